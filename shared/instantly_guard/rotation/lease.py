"""The rotation lease: who may change a secret's rotation state, until when.

A lease (`<holder> <expiry>` in `instantly-guard.lease`) is taken and released with the run's
etag-guarded update (`Run.commit`), so two deliveries never work on one secret at once: the
second finds the lease and backs off with `RotationBusyError` (retryable). A crashed holder's
lease simply expires, and the next delivery (or the sweep) resumes from the recorded phase.
"""

from __future__ import annotations

import logging
import secrets as _random
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Final

from instantly_guard.rotation.errors import RotationBusyError, describe
from instantly_guard.rotation.model import CURRENT, STATE_RESERVE, Lease, Phase, RotationState
from instantly_guard.rotation.run import Run, Trigger
from instantly_guard.secrets.base import VersionState

_log = logging.getLogger("instantly_guard.rotation")

DEFAULT_LEASE: Final = timedelta(minutes=10)
_TICK: Final = timedelta(microseconds=1)  # "later than" as "at least this much later"


def new_holder() -> str:
    """A fresh, random name for the holder of a lease."""
    return _random.token_hex(6)


def claim(run: Run, trigger: Trigger, *, now: datetime, duration: timedelta) -> bool:
    """Take the lease for `trigger`'s rotation. False when there is nothing to do for it.

    Raises RotationBusyError while another delivery's lease is active. A rotation left
    unfinished is resumed under the new lease; an IDLE secret starts one (CREATING) unless a
    rotation for this event time (or a later one) already finished and the trigger is not forced.

    A secret whose first value was supplied outside the protocol (Terraform's write-only
    bootstrap version, a console upload) has versions but no `current`: its newest enabled
    version is adopted as `current` in the same update, so it is rotated (and later
    revoked) like any other, and a webhook secret's first rotation keeps accepting it.
    """
    adopt: str | None = None
    if run.state.phase is Phase.IDLE and run.state.current is None:
        enabled = [
            v.version for v in run.store.list_versions(run.name) if v.state is VersionState.ENABLED
        ]
        adopt = enabled[-1] if enabled else None

    def change(state: RotationState) -> RotationState | None:
        lease = Lease(run.holder or "", now + duration)
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
            and trigger.event_time < state.rotation_time + max(trigger.min_interval, _TICK)
        ):
            # A duplicate, an older event, or one too soon after the last rotation: checked here,
            # under the etag, so concurrent deliveries of a burst cannot all pass it.
            return None
        if state.room(run.meta.annotations) < STATE_RESERVE:
            # Refused before anything is minted: a key whose rotation cannot be recorded would
            # be orphaned. The backlog (old keys never revoked) must be cleared first.
            raise run.state_full(state)
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
            extra=run.log_fields(step="claim", phase=run.state.phase.value),
        )
    return claimed


def claim_idle(run: Run, current: str, *, now: datetime, duration: timedelta) -> bool:
    """Take the lease under a fresh holder for work outside a rotation (settling a webhook
    secret). False, and nothing changed, unless the secret is IDLE, unleased and its `current`
    is still `current`."""
    run.holder = new_holder()

    def take(state: RotationState) -> RotationState | None:
        busy = state.lease is not None and state.lease.active(now)
        if busy or state.current != current or state.phase is not Phase.IDLE:
            return None
        return state.evolve(lease=Lease(run.holder or "", now + duration))

    return run.commit(take, need_lease=False)


def release(run: Run) -> None:
    """Give the lease back if this run still holds it; best effort (after a failure)."""
    with suppress(Exception):
        run.reload()
        if run.holds_lease():
            run.commit(lambda s: s.evolve(lease=None))


def release_failed(run: Run, exc: Exception, *, now: datetime) -> None:
    """Log the failure of a rotation step, then release the lease and note the failure on the
    secret (`last-error`), best effort."""
    note = f"{now.isoformat(timespec='seconds')} {describe(exc)}"
    retryable = bool(getattr(exc, "retryable", True))
    _log.log(
        logging.WARNING if retryable else logging.ERROR,
        "rotation step failed",
        extra=run.log_fields(
            step=run.state.phase.value,
            error=describe(exc),
            retryable=retryable,
            rotation_failed=not retryable,
        ),
    )
    with suppress(Exception):
        run.reload()
        if run.holds_lease():
            run.commit(lambda s: s.evolve(lease=None, last_error=note))
