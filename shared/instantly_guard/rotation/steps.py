"""The rotation's forward steps, each run under the lease and each recorded on the secret:

    CREATING --create_and_test--> TESTED --store_key--> STORED --finish--> IDLE     (API key)
    CREATING --store_webhook_secret--> STORED --update_webhooks, finish--> IDLE     (webhook secret)

A step starts from the state its phase says and records its result with one guarded update
(`Run.commit`), so a step interrupted anywhere is redone or skipped safely by the next delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime

from instantly_guard.errors import BackendError, ConfigError, NotFoundError
from instantly_guard.rotation import webhook_headers, webhook_secret
from instantly_guard.rotation.admin import InstantlyApi, delete_key
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.model import (
    CURRENT,
    PENDING,
    PREVIOUS,
    Kind,
    ManagedConfig,
    Phase,
    Revocation,
    RotationState,
    fingerprint,
)
from instantly_guard.rotation.run import Run, Trigger
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretNotFoundError, VersionState, VersionUnavailableError

_log = logging.getLogger("instantly_guard.rotation")

KeyTest = Callable[[Secret, Sequence[str]], None]
"""Raises unless a new key works with the scopes given (`keytest.KeyTester`)."""


def create_and_test(run: Run, config: ManagedConfig, admin: InstantlyApi, test: KeyTest) -> Secret:
    """CREATING -> TESTED: mint the rotation's key, test it, record its id and fingerprint.

    Leftovers of earlier attempts (keys under this rotation's name) are deleted first; a key
    that fails its test is deleted again. Returns the new key, which only this call has seen.
    """
    key_name = config.key_name(run.state.rotation_id or "")
    # A key under this rotation's name is a leftover whose string was never stored (lost
    # create answer, crash): unusable, so delete it before minting the one we keep.
    for key in admin.list_api_keys():
        if key.name == key_name:
            _log.warning(
                "deleting a key an earlier attempt created but never stored",
                extra=run.log_fields(step="create", key_id=key.id),
            )
            delete_key(admin, key.id)
    created = admin.create_api_key(key_name, list(config.scopes))
    _log.info("key created", extra=run.log_fields(step="create", key_id=created.id))
    try:
        test(created.key, config.scopes)
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
            delete_key(admin, created.id)
        raise
    _log.info("key tested", extra=run.log_fields(step="test", key_id=created.id))
    return created.key


def store_key(run: Run, admin: InstantlyApi, key: Secret | None) -> None:
    """TESTED -> STORED: add the tested key as a version and point `pending` at it.

    `key` is None when resuming: the version is then looked up by the recorded fingerprint.
    When no version holds the key (the add failed or never happened), the key is deleted and
    the rotation goes back to CREATING.
    """
    if key is None:
        version = _find_pending_version(run)
        if version is None:
            # The add never happened (or its result is unknowable): the key's string is lost.
            _abandon_key(run, admin, "tested key was never stored; starting over")
            return
    else:
        try:
            version = run.store.add_version(run.name, key)
        except BackendError:
            found = _find_pending_version(run)  # the add may have happened anyway
            if found is None:
                _abandon_key(run, admin, "storing the key failed")
                raise
            version = found
    run.commit(lambda s: s.evolve(phase=Phase.STORED, aliases={**s.aliases, PENDING: version}))
    _log.info("key stored", extra=run.log_fields(step="store", version=version))


def _abandon_key(run: Run, admin: InstantlyApi, why: str) -> None:
    """Delete the tested key that no version holds and go back to CREATING."""
    key_id = run.state.pending_key_id
    _log.warning("%s; deleting the key", why, extra=run.log_fields(step="store", key_id=key_id))
    if key_id:
        delete_key(admin, key_id)
    run.commit(
        lambda s: s.evolve(phase=Phase.CREATING, pending_key_id=None, pending_fingerprint=None)
    )


def _find_pending_version(run: Run) -> str | None:
    """The version holding the key recorded in TESTED, found by its fingerprint."""
    wanted = run.state.pending_fingerprint
    if not wanted:
        return None
    aliased = set(run.state.aliases.values())
    floor = int(run.state.current or 0)
    candidates = [
        v
        for v in run.store.list_versions(run.name)
        if v.state is VersionState.ENABLED and v.version not in aliased and int(v.version) > floor
    ]
    for info in reversed(candidates):
        with suppress(VersionUnavailableError, SecretNotFoundError):
            value = run.store.access(run.name, info.version)
            if fingerprint(value.reveal()) == wanted:
                return info.version
    return None


def store_webhook_secret(
    run: Run,
    config: ManagedConfig,
    *,
    generate: Callable[[], Secret],
    clock: Callable[[], datetime],
) -> None:
    """CREATING -> STORED: store a version that accepts the new secret, the old one until the
    grace ends, and every older one the current version still accepts until *its* grace ends
    (a rotation inside another's grace period must not cut that one short)."""
    new = generate()
    if len(new.reveal().encode()) < webhook_secret.MIN_BYTES:
        raise ConfigError("generated webhook secret is shorter than 32 bytes")
    now = clock()
    payload = webhook_secret.single(new)
    if run.state.current:
        current = run.store.access(run.name, CURRENT)
        old = webhook_secret.current_of(current)
        retiring, dropped = webhook_secret.carried(current, old, now + config.grace, now)
        if dropped:
            _log.warning(
                "rotating faster than the grace allows: the oldest retired webhook secrets "
                "stop being accepted before their grace ends",
                extra=run.log_fields(step="store", dropped=dropped),
            )
        payload = webhook_secret.combined(new, retiring)
    version = run.store.add_version(run.name, payload)
    run.commit(lambda s: s.evolve(phase=Phase.STORED, aliases={**s.aliases, PENDING: version}))
    _log.info(
        "webhook secret stored (old and new accepted)",
        extra=run.log_fields(step="store", version=version),
    )


def update_webhooks(run: Run, config: ManagedConfig, admin: InstantlyApi) -> None:
    """Point the webhooks' header at the new secret: only now that `latest` accepts it.

    Header values read from Instantly may be masked: they are written back only when the read
    can be trusted (`webhook_headers`). The new header is then verified by what Instantly
    really sends: a test delivery (`POST /webhooks/{id}/test`) the receiver must accept; the
    PATCH echo and a re-read are checked too, where they show the value."""
    pending = run.store.access(run.name, run.state.pending or PENDING)
    new = webhook_secret.current_of(pending)
    known = {new.reveal(), *(r.secret.reveal() for r in webhook_secret.parse(pending).retiring)}
    for webhook_id in config.webhook_ids:
        try:
            hook = admin.get_webhook(webhook_id)
        except NotFoundError:
            _log.warning(
                "webhook not found; skipping it",
                extra=run.log_fields(step="update-webhooks", webhook_id=webhook_id),
            )
            continue
        read = dict(hook.headers or {})
        if not webhook_headers.holds_only(read, config.webhook_header, new.reveal()):
            headers = webhook_headers.patched(webhook_id, read, config.webhook_header, new, known)
            updated = admin.update_webhook(webhook_id, headers=headers)
            echoed = webhook_headers.ours(updated.headers or {}, config.webhook_header)
            if any(echo != new.reveal() and echo in known for echo in echoed):
                raise RotationError(
                    f"webhook {webhook_id} did not take the new header", retryable=True
                )
        _verify_delivery(run, admin, webhook_id)
        _log.info(
            "webhook header updated and checked by a test delivery",
            extra=run.log_fields(step="update-webhooks", webhook_id=webhook_id),
        )


def _verify_delivery(run: Run, admin: InstantlyApi, webhook_id: str) -> None:
    """A test delivery with the headers Instantly stored must not be refused by the receiver.

    A delivery the receiver answered with a non-2xx is proof that Instantly sends something
    else: retried. One that got no answer at all (the receiver is not deployed yet, or down)
    proves nothing about the header, and every delivery fails then whatever the secret: the
    rotation goes on, with a WARNING."""
    result = admin.test_webhook(webhook_id)
    fields = run.log_fields(step="update-webhooks", webhook_id=webhook_id)
    if result.status_code is None:
        if result.success is not True:
            _log.warning(
                "the test delivery got no answer from the receiver: header not verified",
                extra={"fields": {**fields["fields"], "detail": result.error or result.message}},
            )
        return
    if result.success is False or not 200 <= result.status_code < 300:
        raise RotationError(
            f"webhook {webhook_id}: the receiver refused Instantly's test delivery "
            f"(status {result.status_code}): the header Instantly sends is not one it accepts",
            retryable=True,
        )


def finish(run: Run, config: ManagedConfig, trigger: Trigger, *, now: datetime) -> None:
    """STORED -> IDLE in one guarded update: `current` -> the new version, `previous` -> the
    old one, `pending` dropped, the old key queued for revocation at now + grace (at once with
    `trigger.revoke_now`), the lease released."""
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
        extra=run.log_fields(
            step="finish",
            version=run.state.current,
            key_id=run.state.current_key_id,
            revoke_after=after.isoformat(timespec="seconds"),
        ),
    )
