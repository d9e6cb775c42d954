"""The rotation protocol: Create, Test, Store, Finish, Revoke (see docs/rotation.md).

Every step first reads where the secret stands and skips what is done, so a redelivered, late or
concurrent event never creates a second key and never revokes the current one:

    IDLE --claim--> CREATING --create+test--> TESTED --add version--> STORED --finish--> IDLE
                       ^                         |
                       +--- no version holds ----+   (lost add / crash: delete the key, redo)

- claim: an etag-guarded update records the rotation id, the event time and a lease
  (`<holder> <expiry>`). A second delivery finds the lease and backs off (`RotationBusyError`,
  retryable); a rotation left half-done by a crash is resumed by the next delivery once its lease
  has expired.
- CREATING: keys named `<prefix>/<secret>/<rotation id>` that exist are leftovers of an attempt
  whose create answer was lost: their string is gone, so they are deleted first. Then a key is
  created and tested with a cheap call its scopes allow; a failed test deletes it.
- TESTED records the key's id and fingerprint *before* adding the version, so after a crash the
  version (if the add happened) is found by fingerprint, or the key is known to be orphaned.
- STORED: `pending` names the new version. For a webhook secret, the header is PATCHed on the
  webhooks here, after the version carrying both secrets is `latest`.
- Finish moves `current` and `previous` and drops `pending` in one guarded update, and queues the
  old key for revocation at now + grace.
- Revoke (after the grace, on the sweep or the next event) deletes the old Instantly key,
  disables the old version and queues it for destruction after the retention period.
"""

from __future__ import annotations

import logging
import secrets as _random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol

from instantly_guard.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    ConflictError,
    GuardError,
    InstantlyError,
    NotFoundError,
    ScopeError,
)
from instantly_guard.instantly.keys import KeyProvider, StaticKey
from instantly_guard.instantly.models import ApiKey, CreatedApiKey, Webhook
from instantly_guard.rotation import webhook_secret
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import (
    CURRENT,
    MANAGED_LABELS,
    PENDING,
    PREVIOUS,
    Destruction,
    Kind,
    Lease,
    ManagedConfig,
    Phase,
    Revocation,
    RotationState,
    fingerprint,
)
from instantly_guard.scopes import (
    FALLBACK_PROBE,
    PROBE_OPERATIONS,
    parse_scopes,
    probe_operation,
)
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import (
    LATEST,
    SecretMetadata,
    SecretNotFoundError,
    SecretStore,
    VersionState,
    VersionUnavailableError,
)
from instantly_guard.secrets.provider import secret_key_provider

_log = logging.getLogger("instantly_guard.rotation")

CAS_ATTEMPTS: Final = 8
DEFAULT_LEASE: Final = timedelta(minutes=10)
# Probe reads that are not listings (no `limit` parameter).
_UNPAGED: Final = frozenset(
    {"/workspaces/current", "/workspace-billing/plan-details", "/webhooks/event-types"}
)


# ---- ports and results ------------------------------------------------------------------------


class InstantlyApi(Protocol):
    """What rotation calls on Instantly (`InstantlyClient` satisfies it)."""

    def list_api_keys(self, *, limit: int = 100) -> Iterator[ApiKey]: ...
    def create_api_key(self, name: str, scopes: Sequence[str]) -> CreatedApiKey: ...
    def delete_api_key(self, key_id: str) -> ApiKey: ...
    def get_webhook(self, webhook_id: str) -> Webhook: ...
    def update_webhook(self, webhook_id: str, **fields: Any) -> Webhook: ...
    def probe(self, path: str = "/campaigns", *, limit: int | None = 1) -> None: ...
    def close(self) -> None: ...


ClientFactory = Callable[[KeyProvider], InstantlyApi]
"""Builds an Instantly client around a key provider (base URL, limiter, timeouts bound in)."""


class RotationError(GuardError):
    """A rotation could not complete. `retryable`: whether redelivering the event can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


class RotationBusyError(RotationError):
    """Another delivery holds the lease on this secret's rotation; try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class KeyTestError(RotationError):
    """The freshly created key did not work; it was deleted and nothing else changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class Outcome(StrEnum):
    ROTATED = "rotated"  # a rotation ran to Finish in this call
    DUPLICATE = "duplicate"  # this event's rotation (or a later one) already finished
    NOT_MANAGED = "not_managed"  # the secret does not carry our label


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why a rotation runs. Deliveries of one event share `rotation_id` and `event_time`."""

    rotation_id: str
    event_time: datetime
    force: bool = False  # rotate even when a rotation for this time already finished (by hand)
    revoke_now: bool = False  # revoke every old key at Finish instead of after the grace

    @classmethod
    def from_request(cls, request: RotateRequest) -> Trigger:
        return cls(rotation_id=request.rotation_id, event_time=request.event_time)

    @classmethod
    def manual(cls, now: datetime, *, revoke_now: bool = False) -> Trigger:
        rotation_id = f"{now:%Y%m%dt%H%M%S}-{_random.token_hex(3)}"
        return cls(rotation_id=rotation_id, event_time=now, force=True, revoke_now=revoke_now)


@dataclass(slots=True)
class RotationResult:
    secret: str
    outcome: Outcome
    rotation_id: str | None = None
    current_version: str | None = None
    revoked_versions: list[str] = field(default_factory=list)
    destroyed_versions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HousekeepingResult:
    revoked_versions: list[str] = field(default_factory=list)
    destroyed_versions: list[str] = field(default_factory=list)
    current_version: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---- one secret's view while a rotation runs ----------------------------------------------------


class _Run:
    """The metadata last read, the state in it, and the etag-guarded way to change it."""

    def __init__(self, store: SecretStore, name: str, holder: str | None) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.meta: SecretMetadata = store.get(name)
        self.state = RotationState.read(self.meta)

    def reload(self) -> None:
        self.meta = self.store.get(self.name)
        self.state = RotationState.read(self.meta)

    def holds_lease(self) -> bool:
        lease = self.state.lease
        return self.holder is not None and lease is not None and lease.holder == self.holder

    def commit(
        self,
        change: Callable[[RotationState], RotationState | None],
        *,
        need_lease: bool = True,
    ) -> bool:
        """Apply `change` to the current state and write it with the etag it was read with.

        On a lost compare-and-swap the secret is re-read and `change` applied again (it must be a
        pure function of the state). Returns False when `change` found nothing to do.
        """
        for _ in range(CAS_ATTEMPTS):
            if need_lease and not self.holds_lease():
                raise RotationBusyError(
                    f"secret {self.name}: the rotation lease was taken over by another delivery"
                )
            new = change(self.state)
            if new is None:
                return False
            try:
                self.meta = self.store.update(
                    self.name,
                    aliases=new.aliases,
                    annotations=new.annotations(self.meta.annotations),
                    etag=self.meta.etag,
                )
            except ConflictError:
                _log.info("secret changed meanwhile; re-reading", extra=self._fields())
                self.reload()
                continue
            self.state = RotationState.read(self.meta)
            return True
        raise RotationBusyError(f"secret {self.name}: too many concurrent updates")

    def _fields(self, **more: Any) -> dict[str, Any]:
        return {"fields": {"secret": self.name, "rotation_id": self.state.rotation_id, **more}}


# ---- the protocol ---------------------------------------------------------------------------------


class Rotator:
    """Runs the rotation protocol over a secret store and Instantly.

    `clients` builds an Instantly client for a key provider; the admin key comes from the
    managed secret's admin secret (alias `current`). `clock` gives aware UTC datetimes.
    """

    def __init__(
        self,
        store: SecretStore,
        clients: ClientFactory,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lease: timedelta = DEFAULT_LEASE,
        test_attempts: int = 3,
        test_backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        generate_webhook_secret: Callable[[], Secret] = webhook_secret.generate,
    ) -> None:
        self.store = store
        self._clients = clients
        self._clock = clock
        self._lease = lease
        self._test_attempts = max(1, test_attempts)
        self._test_backoff = test_backoff
        self._sleep = sleep
        self._generate = generate_webhook_secret

    def now(self) -> datetime:
        return self._clock()

    # -- entry points -----------------------------------------------------------------------

    def handle(self, request: RotateRequest) -> RotationResult:
        """Handle one SECRET_ROTATE delivery."""
        return self.rotate(request.secret, Trigger.from_request(request))

    def rotate(self, name: str, trigger: Trigger) -> RotationResult:
        """Run (or resume) the rotation `trigger` asks for, then the due revocations.

        Raises RotationError (with `retryable`), ConfigError for a badly declared secret,
        BackendError or InstantlyError for failures of either side (each with `retryable`).
        """
        holder = _random.token_hex(6)
        run = _Run(self.store, name, holder)
        if not ManagedConfig.is_managed(run.meta):
            _log.warning(
                "secret is not managed by instantly-guard; ignoring",
                extra={"fields": {"secret": name}},
            )
            return RotationResult(name, Outcome.NOT_MANAGED)
        config = ManagedConfig.parse(run.meta)
        result = RotationResult(name, Outcome.DUPLICATE, rotation_id=run.state.rotation_id)
        try:
            claimed = self._claim(run, trigger)
            if claimed:
                result.rotation_id = run.state.rotation_id
                self._drive(run, config, trigger)
                result.outcome = Outcome.ROTATED
        except Exception as exc:
            self._record_failure(run, exc)
            raise
        if not claimed:
            _log.info("rotation already done for this event", extra=run._fields(step="claim"))
        house = self.housekeeping(name, revoke_all=trigger.revoke_now)
        result.revoked_versions = house.revoked_versions
        result.destroyed_versions = house.destroyed_versions
        result.current_version = house.current_version
        return result

    def sweep(self) -> dict[str, RotationResult | Exception]:
        """For every managed secret: resume a rotation whose lease ran out, then revoke and
        destroy what is due. Failures are collected per secret, never stop the sweep."""
        results: dict[str, RotationResult | Exception] = {}
        for meta in self.store.list_secrets(MANAGED_LABELS):
            try:
                results[meta.name] = self._sweep_one(meta)
            except Exception as exc:  # one broken secret must not stop the others
                _log.error(
                    "sweep failed for a secret",
                    extra={"fields": {"secret": meta.name, "error": _describe(exc)}},
                )
                results[meta.name] = exc
        return results

    def _sweep_one(self, meta: SecretMetadata) -> RotationResult:
        state = RotationState.read(meta)
        now = self._clock()
        stuck = state.phase is not Phase.IDLE and (
            state.lease is None or not state.lease.active(now)
        )
        if stuck and state.rotation_id:
            _log.warning(
                "resuming a rotation left unfinished",
                extra={"fields": {"secret": meta.name, "rotation_id": state.rotation_id}},
            )
            trigger = Trigger(state.rotation_id, state.rotation_time or now)
            return self.rotate(meta.name, trigger)
        house = self.housekeeping(meta.name)
        return RotationResult(
            meta.name,
            Outcome.DUPLICATE,
            rotation_id=state.rotation_id,
            current_version=house.current_version,
            revoked_versions=house.revoked_versions,
            destroyed_versions=house.destroyed_versions,
        )

    # -- claim ------------------------------------------------------------------------------

    def _claim(self, run: _Run, trigger: Trigger) -> bool:
        """Take the lease. False when there is nothing to do for this trigger.

        A secret whose first value was supplied outside the protocol (Terraform's write-only
        bootstrap version, a console upload) has versions but no `current`: its newest enabled
        version is adopted as `current` in the same update, so it is rotated (and later
        revoked) like any other, and a webhook secret's first rotation keeps accepting it.
        """
        now = self._clock()
        adopt: str | None = None
        if run.state.phase is Phase.IDLE and run.state.current is None:
            enabled = [
                v.version
                for v in self.store.list_versions(run.name)
                if v.state is VersionState.ENABLED
            ]
            adopt = enabled[-1] if enabled else None

        def change(state: RotationState) -> RotationState | None:
            lease = Lease(run.holder or "", now + self._lease)
            if state.lease is not None and state.lease.active(now):
                # A rotation in progress, or (phase IDLE) the settle step of a webhook secret.
                raise RotationBusyError(
                    f"secret {run.name}: rotation {state.rotation_id} is in progress "
                    f"(lease until {state.lease.until.isoformat()})"
                )
            if state.phase is not Phase.IDLE:
                # Resume what was started: its key or version may already exist.
                return state.evolve(lease=lease)
            if (
                not trigger.force
                and state.rotation_time is not None
                and trigger.event_time <= state.rotation_time
            ):
                return None
            aliases = dict(state.aliases)
            if state.current is None and adopt is not None:
                aliases[CURRENT] = adopt
            return state.evolve(
                phase=Phase.CREATING,
                rotation_id=trigger.rotation_id,
                rotation_time=trigger.event_time,
                lease=lease,
                last_error=None,
                aliases=aliases,
            )

        resumed = run.state.phase is not Phase.IDLE
        claimed = run.commit(change, need_lease=False)
        if claimed:
            _log.info(
                "rotation resumed" if resumed else "rotation started",
                extra=run._fields(step="claim", phase=run.state.phase.value),
            )
        return claimed

    def _record_failure(self, run: _Run, exc: Exception) -> None:
        """Release the lease and note the failure on the secret, best effort."""
        note = f"{self._clock().isoformat(timespec='seconds')} {_describe(exc)}"
        retryable = bool(getattr(exc, "retryable", True))
        _log.log(
            logging.WARNING if retryable else logging.ERROR,
            "rotation step failed",
            extra=run._fields(
                step=run.state.phase.value,
                error=_describe(exc),
                retryable=retryable,
                rotation_failed=not retryable,
            ),
        )
        with suppress(Exception):
            run.reload()
            if run.holds_lease():
                run.commit(lambda s: s.evolve(lease=None, last_error=note))

    # -- steps ------------------------------------------------------------------------------

    def _drive(self, run: _Run, config: ManagedConfig, trigger: Trigger) -> None:
        admin = self._admin_client(config)
        try:
            new_key: Secret | None = None
            for _ in range(6):  # CREATING -> TESTED -> STORED -> IDLE, plus one restart
                phase = run.state.phase
                if phase is Phase.IDLE:
                    return
                if config.kind is Kind.WEBHOOK_SECRET:
                    if phase is Phase.STORED:
                        self._update_webhooks(run, config, admin)
                        self._finish(run, config, trigger)
                    else:
                        self._store_webhook_secret(run, config)
                elif phase is Phase.CREATING:
                    new_key = self._create_and_test(run, config, admin)
                elif phase is Phase.TESTED:
                    self._store_key(run, admin, new_key)
                    new_key = None
                else:
                    self._finish(run, config, trigger)
            raise RotationError(f"secret {run.name}: rotation did not converge", retryable=True)
        finally:
            admin.close()

    def _admin_client(self, config: ManagedConfig) -> InstantlyApi:
        try:
            alias = CURRENT
            if not config.self_admin and CURRENT not in self.store.get(config.admin_secret).aliases:
                # Bootstrapped outside the protocol (Terraform) and not yet rotated: its newest
                # version is the admin key until its own first rotation adopts it as `current`.
                alias = LATEST
            provider = secret_key_provider(self.store, config.admin_secret, alias=alias, ttl=30.0)
            provider()  # read (and cache) it now: a missing admin key fails before any change
        except (SecretNotFoundError, VersionUnavailableError) as exc:
            raise RotationError(
                f"admin secret {config.admin_secret} has no usable `current` key: store one "
                f"with `instantly-guard secrets set {config.admin_secret}`",
                retryable=False,
            ) from exc
        return self._clients(provider)

    def _create_and_test(self, run: _Run, config: ManagedConfig, admin: InstantlyApi) -> Secret:
        key_name = config.key_name(run.state.rotation_id or "")
        # A key under this rotation's name is a leftover whose string was never stored (lost
        # create answer, crash): unusable, so delete it before minting the one we keep.
        for key in admin.list_api_keys():
            if key.name == key_name:
                _log.warning(
                    "deleting a key an earlier attempt created but never stored",
                    extra=run._fields(step="create", key_id=key.id),
                )
                self._delete_key(admin, key.id)
        created = admin.create_api_key(key_name, list(config.scopes))
        _log.info("key created", extra=run._fields(step="create", key_id=created.id))
        try:
            self._test_key(created.key, config.scopes)
            pending = fingerprint(created.key.reveal())
            run.commit(
                lambda s: s.evolve(
                    phase=Phase.TESTED,
                    pending_key_id=created.id,
                    pending_fingerprint=pending,
                )
            )
        except Exception:
            # Not on a crash (BaseException): then the next attempt finds the key by its name.
            with suppress(Exception):
                self._delete_key(admin, created.id)
            raise
        _log.info("key tested", extra=run._fields(step="test", key_id=created.id))
        return created.key

    def _test_key(self, key: Secret, scopes: Sequence[str]) -> None:
        """Prove the new key works with a cheap read its scopes allow (scopes.probe_operation).

        A key whose scopes allow none of the cheap reads (say only `leads:create`) cannot be
        exercised without side effects. It is tested with a cheap read it lacks the scope for,
        expecting Instantly's scope 401: `Invalid scope. Required: ... Found: <its scopes>`
        proves that Instantly authenticated the key and knows it with exactly the declared
        scopes, while a bad key gets a plain 401. (A 200 there also proves the key works.)
        """
        operation = probe_operation(scopes)
        expect_scope_error = operation == FALLBACK_PROBE
        if expect_scope_error:
            operation = PROBE_OPERATIONS[0]
        path = operation.split(" ", 1)[1]
        client = self._clients(StaticKey(key))
        try:
            for attempt in range(self._test_attempts):
                try:
                    client.probe(path, limit=None if path in _UNPAGED else 1)
                    return
                except ScopeError as exc:
                    if not expect_scope_error:
                        raise KeyTestError(
                            f"new key lacks a declared scope for {operation} ({exc.message})"
                        ) from exc
                    if exc.found and parse_scopes(exc.found) != parse_scopes(scopes):
                        raise KeyTestError(
                            "Instantly reports the new key with other scopes than declared"
                        ) from exc
                    return
                except AuthenticationError as exc:
                    # A key can take a moment to work everywhere after its creation.
                    if attempt + 1 == self._test_attempts:
                        raise KeyTestError("new key was refused by Instantly (401)") from exc
                    self._sleep(self._test_backoff * 2**attempt)
                except InstantlyError as exc:
                    raise KeyTestError(f"testing the new key failed: {exc}") from exc
        finally:
            client.close()

    def _store_key(self, run: _Run, admin: InstantlyApi, key: Secret | None) -> None:
        if key is None:
            version = self._find_pending_version(run)
            if version is None:
                # The add never happened (or its result is unknowable): the key's string is lost.
                self._abandon_key(run, admin, "tested key was never stored; starting over")
                return
        else:
            try:
                version = self.store.add_version(run.name, key)
            except BackendError:
                found = self._find_pending_version(run)  # the add may have happened anyway
                if found is None:
                    self._abandon_key(run, admin, "storing the key failed")
                    raise
                version = found
        run.commit(lambda s: s.evolve(phase=Phase.STORED, aliases={**s.aliases, PENDING: version}))
        _log.info("key stored", extra=run._fields(step="store", version=version))

    def _abandon_key(self, run: _Run, admin: InstantlyApi, why: str) -> None:
        """Delete the tested key that no version holds and go back to CREATING."""
        key_id = run.state.pending_key_id
        _log.warning("%s; deleting the key", why, extra=run._fields(step="store", key_id=key_id))
        if key_id:
            self._delete_key(admin, key_id)
        run.commit(
            lambda s: s.evolve(phase=Phase.CREATING, pending_key_id=None, pending_fingerprint=None)
        )

    def _find_pending_version(self, run: _Run) -> str | None:
        """The version holding the key recorded in TESTED, found by its fingerprint."""
        wanted = run.state.pending_fingerprint
        if not wanted:
            return None
        aliased = set(run.state.aliases.values())
        floor = int(run.state.current or 0)
        candidates = [
            v
            for v in self.store.list_versions(run.name)
            if v.state is VersionState.ENABLED
            and v.version not in aliased
            and int(v.version) > floor
        ]
        for info in reversed(candidates):
            with suppress(VersionUnavailableError, SecretNotFoundError):
                value = self.store.access(run.name, info.version)
                if fingerprint(value.reveal()) == wanted:
                    return info.version
        return None

    def _store_webhook_secret(self, run: _Run, config: ManagedConfig) -> None:
        """Store a version that accepts the new secret and the old one until the grace ends."""
        new = self._generate()
        if len(new.reveal().encode()) < webhook_secret.MIN_BYTES:
            raise ConfigError("generated webhook secret is shorter than 32 bytes")
        old: Secret | None = None
        if run.state.current:
            old = webhook_secret.current_of(self.store.access(run.name, CURRENT))
        expires = self._clock() + config.grace
        payload = webhook_secret.combined(new, old, expires) if old else webhook_secret.single(new)
        version = self.store.add_version(run.name, payload)
        run.commit(lambda s: s.evolve(phase=Phase.STORED, aliases={**s.aliases, PENDING: version}))
        _log.info(
            "webhook secret stored (old and new accepted)",
            extra=run._fields(step="store", version=version),
        )

    def _update_webhooks(self, run: _Run, config: ManagedConfig, admin: InstantlyApi) -> None:
        """Point the webhooks' header at the new secret: only now that `latest` accepts it."""
        new = webhook_secret.current_of(self.store.access(run.name, run.state.pending or PENDING))
        for webhook_id in config.webhook_ids:
            try:
                hook = admin.get_webhook(webhook_id)
            except NotFoundError:
                _log.warning(
                    "webhook not found; skipping it",
                    extra=run._fields(step="update-webhooks", webhook_id=webhook_id),
                )
                continue
            headers: dict[str, str | Secret] = dict(hook.headers or {})
            if headers.get(config.webhook_header) == new.reveal():
                continue
            headers[config.webhook_header] = new
            updated = admin.update_webhook(webhook_id, headers=headers)
            if (updated.headers or {}).get(config.webhook_header) != new.reveal():
                raise RotationError(
                    f"webhook {webhook_id} did not take the new header", retryable=True
                )
            _log.info(
                "webhook header updated",
                extra=run._fields(step="update-webhooks", webhook_id=webhook_id),
            )

    def _finish(self, run: _Run, config: ManagedConfig, trigger: Trigger) -> None:
        now = self._clock()
        after = now if trigger.revoke_now else now + config.grace

        def change(state: RotationState) -> RotationState | None:
            if state.phase is not Phase.STORED or state.pending is None:
                return None
            aliases = {k: v for k, v in state.aliases.items() if k not in (PENDING, PREVIOUS)}
            aliases[CURRENT] = state.pending
            revocations = list(state.revocations)
            if state.current and state.current != state.pending:
                aliases[PREVIOUS] = state.current
                revocations.append(
                    Revocation(
                        version=state.current,
                        key_id=state.current_key_id,
                        combined=state.pending if config.kind is Kind.WEBHOOK_SECRET else None,
                        after=after,
                    )
                )
            return state.evolve(
                phase=Phase.IDLE,
                aliases=aliases,
                current_key_id=state.pending_key_id,
                pending_key_id=None,
                pending_fingerprint=None,
                revocations=tuple(revocations),
                lease=None,
                last_rotated=now,
                last_error=None,
            )

        run.commit(change)
        _log.info(
            "rotation finished",
            extra=run._fields(
                step="finish",
                version=run.state.current,
                key_id=run.state.current_key_id,
                revoke_after=after.isoformat(timespec="seconds"),
            ),
        )

    # -- revoke and destroy -------------------------------------------------------------------

    def housekeeping(self, name: str, *, revoke_all: bool = False) -> HousekeepingResult:
        """Revoke old keys whose grace has passed (all of them with `revoke_all`), then destroy
        disabled versions whose retention has passed."""
        result = HousekeepingResult()
        run = _Run(self.store, name, None)
        if not ManagedConfig.is_managed(run.meta):
            return result
        config = ManagedConfig.parse(run.meta)
        now = self._clock()
        due = [r for r in run.state.revocations if revoke_all or r.after <= now]
        if due:
            result.revoked_versions = self._revoke(run, config, due, now)
        doomed = [d for d in run.state.destructions if d.after <= now]
        if doomed:
            result.destroyed_versions = self._destroy(run, doomed)
        result.current_version = run.state.current
        return result

    def _revoke(
        self, run: _Run, config: ManagedConfig, due: list[Revocation], now: datetime
    ) -> list[str]:
        # The admin key is read afresh: when the admin secret rotated itself, `current` is new.
        admin = self._admin_client(config) if config.kind is Kind.API_KEY else None
        try:
            if config.kind is Kind.WEBHOOK_SECRET:
                self._settle_webhook_secret(run)
            for item in due:
                if item.key_id and admin is not None:
                    if item.key_id in (run.state.current_key_id, run.state.pending_key_id):
                        raise RotationError(
                            f"secret {run.name}: refusing to revoke key {item.key_id}, which "
                            "is still current or pending",
                            retryable=False,
                        )
                    self._delete_key(admin, item.key_id)
                    _log.info(
                        "old key revoked", extra=run._fields(step="revoke", key_id=item.key_id)
                    )
                elif admin is not None:
                    _log.warning(
                        "old key's id is unknown (its value was set by hand without --key-id): "
                        "delete it in Instantly by hand",
                        extra=run._fields(step="revoke", version=item.version),
                    )
        finally:
            if admin is not None:
                admin.close()
        versions = [v for item in due for v in (item.version, item.combined) if v]
        for version in versions:
            if version in (run.state.current, run.state.pending):
                continue
            self.store.disable_version(run.name, version)
        done = set(due)
        retention = config.retention

        def change(state: RotationState) -> RotationState | None:
            remaining = tuple(r for r in state.revocations if r not in done)
            if len(remaining) == len(state.revocations):
                return None
            gone = set(versions) - {state.current, state.pending}
            aliases = {k: v for k, v in state.aliases.items() if k != PREVIOUS or v not in gone}
            known = {d.version for d in state.destructions}
            destructions = state.destructions + tuple(
                Destruction(v, now + retention) for v in sorted(gone, key=int) if v not in known
            )
            return state.evolve(revocations=remaining, aliases=aliases, destructions=destructions)

        run.commit(change, need_lease=False)
        return [item.version for item in due if item.version]

    def _settle_webhook_secret(self, run: _Run) -> None:
        """After the grace: make `current` a version holding only the new webhook secret.

        The added version becomes `latest`, which the receiver follows: so it is added only under
        the rotation lease, never while a rotation is rolling a newer secret out (that rotation
        replaces the combined version anyway). A rotation meanwhile backs off and is retried.
        """
        current = run.state.current
        if current is None:
            return
        payload = self.store.access(run.name, current)
        new = webhook_secret.current_of(payload)
        if payload.reveal() == new.reveal():
            return  # already a single-secret version
        now = self._clock()
        run.holder = _random.token_hex(6)

        def take(state: RotationState) -> RotationState | None:
            busy = state.lease is not None and state.lease.active(now)
            if busy or state.current != current or state.phase is not Phase.IDLE:
                return None
            return state.evolve(lease=Lease(run.holder or "", now + self._lease))

        if not run.commit(take, need_lease=False):
            return
        try:
            latest_version = self.store.list_versions(run.name)[-1]
            if (
                latest_version.state is VersionState.ENABLED
                and self.store.access(run.name, latest_version.version).reveal() == new.reveal()
            ):
                version = latest_version.version  # an earlier attempt added it already
            else:
                version = self.store.add_version(run.name, webhook_secret.single(new))
            run.commit(lambda s: s.evolve(aliases={**s.aliases, CURRENT: version}, lease=None))
        except Exception:
            with suppress(Exception):
                run.reload()
                if run.holds_lease():
                    run.commit(lambda s: s.evolve(lease=None))
            raise
        _log.info(
            "webhook secret settled (old secret no longer accepted)",
            extra=run._fields(step="revoke", version=version),
        )

    def _destroy(self, run: _Run, doomed: list[Destruction]) -> list[str]:
        protected = set(run.state.aliases.values())
        destroyed = []
        for item in doomed:
            if item.version in protected:
                continue
            self.store.destroy_version(run.name, item.version)
            destroyed.append(item.version)
        done = set(doomed)

        def change(state: RotationState) -> RotationState | None:
            remaining = tuple(d for d in state.destructions if d not in done)
            if len(remaining) == len(state.destructions):
                return None
            return state.evolve(destructions=remaining)

        run.commit(change, need_lease=False)
        if destroyed:
            _log.info("old versions destroyed", extra=run._fields(versions=destroyed))
        return destroyed

    @staticmethod
    def _delete_key(admin: InstantlyApi, key_id: str) -> None:
        with suppress(NotFoundError):
            admin.delete_api_key(key_id)


# ---- setting a value by hand --------------------------------------------------------------------


def set_current(
    store: SecretStore,
    name: str,
    value: Secret,
    *,
    key_id: str | None = None,
) -> str:
    """Store `value` as a new version and make it `current` (bootstrapping the admin key).

    Refused while a rotation is in progress. The version it replaces is left enabled and
    unaliased: revoke that key by hand if it must stop working.
    """
    meta = store.get(name)
    state = RotationState.read(meta)
    if state.phase is not Phase.IDLE:
        raise RotationError(
            f"secret {name}: a rotation is in progress ({state.phase.value}); wait for it",
            retryable=True,
        )
    version = store.add_version(name, value)
    for _ in range(CAS_ATTEMPTS):
        new = state.evolve(aliases={**state.aliases, CURRENT: version}, current_key_id=key_id)
        try:
            store.update(
                name,
                aliases=new.aliases,
                annotations=new.annotations(meta.annotations),
                etag=meta.etag,
            )
            return version
        except ConflictError:
            meta = store.get(name)
            state = RotationState.read(meta)
    raise RotationBusyError(f"secret {name}: too many concurrent updates")


def _describe(exc: BaseException) -> str:
    """`Type: message` for logs and the last-error annotation. Our errors never carry values."""
    return f"{type(exc).__name__}: {exc}"[:400]


def describe_results(results: Mapping[str, RotationResult | Exception]) -> dict[str, Any]:
    """A JSON-able summary of a sweep."""
    summary: dict[str, Any] = {}
    for name, item in results.items():
        if isinstance(item, Exception):
            summary[name] = {"error": _describe(item)}
        else:
            summary[name] = {
                "outcome": item.outcome.value,
                "current_version": item.current_version,
                "revoked_versions": item.revoked_versions,
                "destroyed_versions": item.destroyed_versions,
            }
    return summary
