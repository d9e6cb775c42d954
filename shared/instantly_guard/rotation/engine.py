"""The rotation protocol: Create, Test, Store, Finish, Revoke (see docs/rotation.md).

Every step first reads where the secret stands and skips what is done, so a redelivered, late or
concurrent event never creates a second key and never revokes the current one:

    IDLE --claim--> CREATING --create+test--> TESTED --add version--> STORED --finish--> IDLE
                       ^                         |
                       +--- no version holds ----+   (lost add / crash: delete the key, redo)

- claim (`lease`): an etag-guarded update records the rotation id, the event time and a lease
  (`<holder> <expiry>`). A second delivery finds the lease and backs off (`RotationBusyError`,
  retryable); a rotation left half-done by a crash is resumed by the next delivery once its lease
  has expired.
- CREATING (`steps`, `keytest`): keys named `<prefix>/<secret>/<rotation id>` that exist are
  leftovers of an attempt whose create answer was lost: their string is gone, so they are
  deleted first. Then a key is created and tested with a cheap call its scopes allow; a failed
  test deletes it.
- TESTED records the key's id and fingerprint *before* adding the version, so after a crash the
  version (if the add happened) is found by fingerprint, or the key is known to be orphaned.
- STORED: `pending` names the new version. For a webhook secret, the header is PATCHed on the
  webhooks here, after the version carrying both secrets is `latest`.
- Finish moves `current` and `previous` and drops `pending` in one guarded update, and queues the
  old key for revocation at now + grace.
- Revoke (`revoke`; after the grace, on the sweep or the next event) deletes the old Instantly
  key, disables the old version and queues it for destruction after the retention period.

This module holds `Rotator`, which drives those steps, and `set_current` (a value set by hand).
The names other modules import from here are re-exported from where they live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from instantly_guard.errors import ConflictError
from instantly_guard.rotation import admission, lease, revoke, steps, webhook_secret
from instantly_guard.rotation.admin import ClientFactory, InstantlyApi, admin_client
from instantly_guard.rotation.errors import (
    KeyTestError,
    RotationBusyError,
    RotationError,
    describe,
)
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.keytest import KeyTester
from instantly_guard.rotation.lease import DEFAULT_LEASE
from instantly_guard.rotation.model import (
    CURRENT,
    MANAGED_LABELS,
    Kind,
    ManagedConfig,
    Phase,
    RotationState,
)
from instantly_guard.rotation.results import (
    HousekeepingResult,
    Outcome,
    RotationResult,
    describe_results,
)
from instantly_guard.rotation.run import CAS_ATTEMPTS, Run, Trigger
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretMetadata, SecretStore

__all__ = [
    "CAS_ATTEMPTS",
    "DEFAULT_LEASE",
    "ClientFactory",
    "HousekeepingResult",
    "InstantlyApi",
    "KeyTestError",
    "Outcome",
    "RotationBusyError",
    "RotationError",
    "RotationResult",
    "Rotator",
    "Trigger",
    "describe_results",
    "set_current",
]

_log = logging.getLogger("instantly_guard.rotation")


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        min_interval: timedelta = timedelta(0),
        fixed_min_interval: timedelta | None = None,
    ) -> None:
        self.store = store
        self._clients = clients
        self._clock = clock
        self._lease = lease
        self._test_key = KeyTester(clients, max(1, test_attempts), test_backoff, sleep)
        self._generate = generate_webhook_secret
        self._min_interval = min_interval
        self._fixed_min_interval = fixed_min_interval

    def now(self) -> datetime:
        return self._clock()

    # -- entry points -----------------------------------------------------------------------

    def handle(self, request: RotateRequest) -> RotationResult:
        """Handle one SECRET_ROTATE delivery: paced, so a burst of events (forged ones included)
        starts at most one rotation per secret per minimum interval (`admission.min_interval`:
        `fixed_min_interval` when set, else half the secret's rotation period, else
        `min_interval`).
        A person's `rotate` is not paced (`Trigger.manual` forces)."""
        return self.rotate(request.secret, Trigger.from_request(request), paced=True)

    def rotate(self, name: str, trigger: Trigger, *, paced: bool = False) -> RotationResult:
        """Run (or resume) the rotation `trigger` asks for, then the due revocations.

        Raises RotationError (with `retryable`), ConfigError for a badly declared secret,
        BackendError or InstantlyError for failures of either side (each with `retryable`).
        """
        run = Run(self.store, name, lease.new_holder())
        if not ManagedConfig.is_managed(run.meta):
            _log.warning(
                "secret is not managed by instantly-guard; ignoring",
                extra={"fields": {"secret": name}},
            )
            return RotationResult(name, Outcome.NOT_MANAGED)
        config = ManagedConfig.parse(run.meta)
        if paced:
            trigger = trigger.paced(
                admission.min_interval(run.meta, self._min_interval, self._fixed_min_interval)
            )
        result = RotationResult(name, Outcome.DUPLICATE, rotation_id=run.state.rotation_id)
        try:
            claimed = lease.claim(run, trigger, now=self._clock(), duration=self._lease)
            if claimed:
                result.rotation_id = run.state.rotation_id
                self._drive(run, config, trigger)
                result.outcome = Outcome.ROTATED
        except Exception as exc:
            lease.release_failed(run, exc, now=self._clock())
            raise
        last = run.state.rotation_time
        if not claimed and last is not None and trigger.event_time > last and not trigger.force:
            result.outcome = Outcome.TOO_SOON
            _log.warning(
                "rotation refused: too soon after the last one",
                extra=run.log_fields(
                    step="claim",
                    event_time=trigger.event_time.isoformat(),
                    last_rotation_time=last.isoformat(),
                    min_interval_s=trigger.min_interval.total_seconds(),
                    rotation_too_soon=True,
                ),
            )
        elif not claimed:
            _log.info("rotation already done for this event", extra=run.log_fields(step="claim"))
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
                    extra={"fields": {"secret": meta.name, "error": describe(exc)}},
                )
                results[meta.name] = exc
        return results

    def housekeeping(self, name: str, *, revoke_all: bool = False) -> HousekeepingResult:
        """Revoke old keys whose grace has passed (all of them with `revoke_all`), then destroy
        disabled versions whose retention has passed."""
        return revoke.housekeeping(
            self.store,
            name,
            admin=self._admin_client,
            clock=self._clock,
            lease_duration=self._lease,
            revoke_all=revoke_all,
        )

    # -- driving one rotation ----------------------------------------------------------------

    def _sweep_one(self, meta: SecretMetadata) -> RotationResult:
        state = RotationState.read(meta)
        now = self._clock()
        if state.last_rotated is not None:
            # One line per secret and sweep: the overdue-rotation alert reads the age from it
            # (a rotation topic that stopped receiving SECRET_ROTATE is otherwise silent).
            _log.info(
                "rotation age",
                extra={
                    "fields": {
                        "secret": meta.name,
                        "rotation_age_seconds": round((now - state.last_rotated).total_seconds()),
                    }
                },
            )
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
            Outcome.SWEPT,
            rotation_id=state.rotation_id,
            current_version=house.current_version,
            revoked_versions=house.revoked_versions,
            destroyed_versions=house.destroyed_versions,
        )

    def _drive(self, run: Run, config: ManagedConfig, trigger: Trigger) -> None:
        """Run the steps from the recorded phase until the rotation is back to IDLE."""
        admin = self._admin_client(config)
        try:
            new_key: Secret | None = None
            for _ in range(6):  # CREATING -> TESTED -> STORED -> IDLE, plus one restart
                phase = run.state.phase
                if phase is Phase.IDLE:
                    return
                if config.kind is Kind.WEBHOOK_SECRET:
                    if phase is Phase.STORED:
                        steps.update_webhooks(run, config, admin)
                        steps.finish(run, config, trigger, now=self._clock())
                    else:
                        steps.store_webhook_secret(
                            run, config, generate=self._generate, clock=self._clock
                        )
                elif phase is Phase.CREATING:
                    new_key = steps.create_and_test(run, config, admin, self._test_key)
                elif phase is Phase.TESTED:
                    steps.store_key(run, admin, new_key)
                    new_key = None
                else:
                    steps.finish(run, config, trigger, now=self._clock())
            raise RotationError(f"secret {run.name}: rotation did not converge", retryable=True)
        finally:
            admin.close()

    def _admin_client(self, config: ManagedConfig) -> InstantlyApi:
        return admin_client(self.store, self._clients, config)


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
