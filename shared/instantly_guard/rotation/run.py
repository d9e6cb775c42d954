"""One rotation run over one secret: why it runs (`Trigger`) and its view of the secret (`Run`).

Everything the protocol knows is on the secret (docs/rotation.md), so a run is the metadata last
read, the `RotationState` in it, and the one way to change it: an etag-guarded update that
re-reads and reapplies on a lost compare-and-swap.
"""

from __future__ import annotations

import logging
import secrets as _random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from instantly_guard.errors import ConflictError
from instantly_guard.rotation.errors import RotationBusyError, RotationStateFullError
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import RotationState
from instantly_guard.secrets.base import (
    ANNOTATIONS_MAX_BYTES,
    SecretMetadata,
    SecretStore,
    annotations_size,
)

_log = logging.getLogger("instantly_guard.rotation")

CAS_ATTEMPTS: Final = 8


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why a rotation runs. Deliveries of one event share `rotation_id` and `event_time`."""

    rotation_id: str
    event_time: datetime
    force: bool = False  # rotate even when a rotation for this time already finished (by hand)
    revoke_now: bool = False  # revoke every old key at Finish instead of after the grace
    # An unforced rotation starts only this long after the last one's event time (admission.py).
    min_interval: timedelta = timedelta(0)

    @classmethod
    def from_request(cls, request: RotateRequest) -> Trigger:
        return cls(rotation_id=request.rotation_id, event_time=request.event_time)

    def paced(self, interval: timedelta) -> Trigger:
        return replace(self, min_interval=interval)

    @classmethod
    def manual(cls, now: datetime, *, revoke_now: bool = False) -> Trigger:
        rotation_id = f"{now:%Y%m%dt%H%M%S}-{_random.token_hex(3)}"
        return cls(rotation_id=rotation_id, event_time=now, force=True, revoke_now=revoke_now)


class Run:
    """The metadata last read, the state in it, and the etag-guarded way to change it.

    `holder` names this run in a lease (`instantly_guard.rotation.lease`); None for a run that
    never takes one.
    """

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
        pure function of the state). Returns False when `change` found nothing to do. Raises
        RotationBusyError when `need_lease` and the lease is no longer this run's, or after
        `CAS_ATTEMPTS` lost swaps; RotationStateFullError, before writing, when the state would
        not fit the annotations (`ANNOTATIONS_MAX_BYTES`).
        """
        for _ in range(CAS_ATTEMPTS):
            if need_lease and not self.holds_lease():
                raise RotationBusyError(
                    f"secret {self.name}: the rotation lease was taken over by another delivery"
                )
            new = change(self.state)
            if new is None:
                return False
            notes = new.annotations(self.meta.annotations)
            if annotations_size(notes) >= ANNOTATIONS_MAX_BYTES:
                raise self.state_full(new)
            try:
                self.meta = self.store.update(
                    self.name, aliases=new.aliases, annotations=notes, etag=self.meta.etag
                )
            except ConflictError:
                _log.info("secret changed meanwhile; re-reading", extra=self.log_fields())
                self.reload()
                continue
            self.state = RotationState.read(self.meta)
            return True
        raise RotationBusyError(f"secret {self.name}: too many concurrent updates")

    def state_full(self, state: RotationState) -> RotationStateFullError:
        """The error saying `state` does not fit (or leaves too little room) on this secret."""
        return RotationStateFullError(
            self.name,
            size=annotations_size(state.annotations(self.meta.annotations)),
            limit=ANNOTATIONS_MAX_BYTES,
            revocations=len(state.revocations),
            destructions=len(state.destructions),
        )

    def log_fields(self, **more: Any) -> dict[str, Any]:
        """The `extra=` of a log record about this run: secret, rotation id, and `more`."""
        return {"fields": {"secret": self.name, "rotation_id": self.state.rotation_id, **more}}
