"""After a rotation: revoke old keys once their grace has passed, destroy old versions once
their retention has passed (the protocol's Revoke step; the sweep and every event run it).

A key is revoked only when it is neither `current` nor `pending` (checked again here, before
deleting), and an aliased version is never disabled or destroyed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from instantly_guard.rotation import lease, webhook_secret
from instantly_guard.rotation.admin import InstantlyApi, delete_key
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.model import (
    CURRENT,
    PREVIOUS,
    Destruction,
    Kind,
    ManagedConfig,
    Revocation,
    RotationState,
)
from instantly_guard.rotation.results import HousekeepingResult
from instantly_guard.rotation.run import Run
from instantly_guard.secrets.base import SecretStore, VersionState

_log = logging.getLogger("instantly_guard.rotation")

BACKLOG_ALERT_COUNT: Final = 3
BACKLOG_ALERT_AGE: Final = timedelta(days=1)
"""Overdue revocations (grace passed, key not deleted) raise the backlog alert when there are
this many, or when the oldest has been due this long: each rotation adds one, and the state
they live in is bounded (`RotationStateFullError`)."""

AdminClient = Callable[[ManagedConfig], InstantlyApi]
"""Opens a client on a managed secret's admin key (`admin.admin_client`, store bound in)."""


def housekeeping(
    store: SecretStore,
    name: str,
    *,
    admin: AdminClient,
    clock: Callable[[], datetime],
    lease_duration: timedelta,
    revoke_all: bool = False,
) -> HousekeepingResult:
    """Revoke old keys whose grace has passed (all of them with `revoke_all`), then destroy
    disabled versions whose retention has passed. Nothing happens to an unmanaged secret."""
    result = HousekeepingResult()
    run = Run(store, name, None)
    if not ManagedConfig.is_managed(run.meta):
        return result
    config = ManagedConfig.parse(run.meta)
    now = clock()
    due = [r for r in run.state.revocations if revoke_all or r.after <= now]
    if due:
        try:
            result.revoked_versions = _revoke(
                run,
                config,
                due,
                now,
                admin=admin,
                clock=clock,
                lease_duration=lease_duration,
                revoke_all=revoke_all,
            )
        finally:
            _report_backlog(run, now)
    doomed = [d for d in run.state.destructions if d.after <= now]
    if doomed:
        result.destroyed_versions = _destroy(run, doomed)
    result.current_version = run.state.current
    return result


def _report_backlog(run: Run, now: datetime) -> None:
    """ERROR with `rotation_backlog: true` (the alert's match) when old keys are piling up."""
    overdue = [r.after for r in run.state.revocations if r.after <= now]
    if not overdue:
        return
    oldest = min(overdue)
    if len(overdue) < BACKLOG_ALERT_COUNT and now - oldest < BACKLOG_ALERT_AGE:
        return
    _log.error(
        "old keys are not being revoked: %d overdue, the oldest since %s",
        len(overdue),
        oldest.isoformat(timespec="seconds"),
        extra=run.log_fields(
            step="revoke",
            rotation_backlog=True,
            revocations_overdue=len(overdue),
            oldest_due=oldest.isoformat(timespec="seconds"),
            state_room_bytes=run.state.room(run.meta.annotations),
        ),
    )


def _revoke(
    run: Run,
    config: ManagedConfig,
    due: list[Revocation],
    now: datetime,
    *,
    admin: AdminClient,
    clock: Callable[[], datetime],
    lease_duration: timedelta,
    revoke_all: bool = False,
) -> list[str]:
    # The admin key is read afresh: when the admin secret rotated itself, `current` is new.
    client = admin(config) if config.kind is Kind.API_KEY else None
    try:
        if config.kind is Kind.WEBHOOK_SECRET:
            _settle_webhook_secret(
                run, clock=clock, lease_duration=lease_duration, drop_all=revoke_all
            )
        for item in due:
            if item.key_id and client is not None:
                if item.key_id in (run.state.current_key_id, run.state.pending_key_id):
                    raise RotationError(
                        f"secret {run.name}: refusing to revoke key {item.key_id}, which "
                        "is still current or pending",
                        retryable=False,
                    )
                delete_key(client, item.key_id)
                _log.info(
                    "old key revoked", extra=run.log_fields(step="revoke", key_id=item.key_id)
                )
            elif client is not None:
                _log.warning(
                    "old key's id is unknown (its value was set by hand without --key-id): "
                    "delete it in Instantly by hand",
                    extra=run.log_fields(step="revoke", version=item.version),
                )
    finally:
        if client is not None:
            client.close()
    versions = [v for item in due for v in (item.version, item.combined) if v]
    for version in versions:
        if version in (run.state.current, run.state.pending):
            continue
        run.store.disable_version(run.name, version)
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


def _settle_webhook_secret(
    run: Run, *, clock: Callable[[], datetime], lease_duration: timedelta, drop_all: bool = False
) -> None:
    """After a grace: make `current` a version without the secrets whose grace has ended
    (the new secret alone once every grace has). A secret whose own grace has not ended, from a
    later rotation inside this one's grace period, is kept.

    The added version becomes `latest`, which the receiver follows: so it is added only under
    the rotation lease, never while a rotation is rolling a newer secret out (that rotation
    replaces the combined version anyway). A rotation meanwhile backs off and is retried.
    """
    current = run.state.current
    if current is None:
        return
    store = run.store
    settled = webhook_secret.pruned(store.access(run.name, current), clock(), drop_all=drop_all)
    if settled is None:
        return  # nothing has expired: already settled, or a later grace still runs
    if not lease.claim_idle(run, current, now=clock(), duration=lease_duration):
        return
    try:
        latest_version = store.list_versions(run.name)[-1]
        if (
            latest_version.state is VersionState.ENABLED
            and store.access(run.name, latest_version.version).reveal() == settled.reveal()
        ):
            version = latest_version.version  # an earlier attempt added it already
        else:
            version = store.add_version(run.name, settled)
        run.commit(lambda s: s.evolve(aliases={**s.aliases, CURRENT: version}, lease=None))
    except Exception:
        lease.release(run)
        raise
    _log.info(
        "webhook secret settled (old secret no longer accepted)",
        extra=run.log_fields(step="revoke", version=version),
    )


def _destroy(run: Run, doomed: list[Destruction]) -> list[str]:
    protected = set(run.state.aliases.values())
    destroyed = []
    for item in doomed:
        if item.version in protected:
            continue
        run.store.destroy_version(run.name, item.version)
        destroyed.append(item.version)
    done = set(doomed)

    def change(state: RotationState) -> RotationState | None:
        remaining = tuple(d for d in state.destructions if d not in done)
        if len(remaining) == len(state.destructions):
            return None
        return state.evolve(destructions=remaining)

    run.commit(change, need_lease=False)
    if destroyed:
        _log.info("old versions destroyed", extra=run.log_fields(versions=destroyed))
    return destroyed
