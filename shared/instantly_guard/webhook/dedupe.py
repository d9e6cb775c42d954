"""Suppressing an immediate duplicate: a bounded, time-limited memory of accepted event ids.

This is an optimisation, not the guarantee: it is per instance and forgets after `window`
seconds or once `max_entries` newer ids arrived (least recently seen first). Consumers still
drop redeliveries by `event_id`. What it must never do is lose an event, so an id is remembered
only after its publish was acknowledged, and a delivery arriving while the same id is being
published waits for that publish (bounded) instead of answering "duplicate" for an event that
may yet fail.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum


class Claim(Enum):
    DUPLICATE = "duplicate"  # accepted within the window: answer 200 duplicate, publish nothing
    OWNED = "owned"  # the caller publishes, then calls `finish`
    UNCOORDINATED = "uncoordinated"  # waited too long for another publish: publish anyway


class RecentIds:
    """An LRU of accepted ids with a time-to-live, plus the set of ids being published now."""

    def __init__(
        self,
        window: float,
        max_entries: int = 10_000,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._max = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._accepted: OrderedDict[str, float] = OrderedDict()  # id -> expiry (monotonic)
        # id -> None while published with nobody waiting; an Event once a duplicate waits on it.
        self._in_flight: dict[str, threading.Event | None] = {}

    @property
    def enabled(self) -> bool:
        return self._window > 0 and self._max > 0

    def __len__(self) -> int:
        return len(self._accepted)

    def _seen(self, event_id: str, now: float) -> bool:
        expiry = self._accepted.get(event_id)
        if expiry is None:
            return False
        if expiry <= now:
            del self._accepted[event_id]
            return False
        self._accepted.move_to_end(event_id)
        return True

    def claim(self, event_id: str, wait: float) -> Claim:
        """Decide what to do with `event_id`; may block up to `wait` seconds (see module doc)."""
        if not self.enabled:
            return Claim.UNCOORDINATED
        deadline = self._monotonic() + wait
        while True:
            with self._lock:
                if self._seen(event_id, self._monotonic()):
                    return Claim.DUPLICATE
                if event_id not in self._in_flight:
                    self._in_flight[event_id] = None
                    return Claim.OWNED
                pending = self._in_flight[event_id]
                if pending is None:
                    pending = self._in_flight[event_id] = threading.Event()
            remaining = deadline - self._monotonic()
            if remaining <= 0 or not pending.wait(remaining):
                return Claim.UNCOORDINATED

    def finish(self, event_id: str, *, accepted: bool) -> None:
        """End an OWNED claim: remember the id if its publish was acknowledged, wake waiters."""
        with self._lock:
            if accepted:
                self._remember(event_id)
            pending = self._in_flight.pop(event_id, None)
        if pending is not None:
            pending.set()

    def remember(self, event_id: str) -> None:
        """Record an acknowledged id outside a claim (after an UNCOORDINATED publish)."""
        if self.enabled:
            with self._lock:
                self._remember(event_id)

    def _remember(self, event_id: str) -> None:
        self._accepted[event_id] = self._monotonic() + self._window
        self._accepted.move_to_end(event_id)
        while len(self._accepted) > self._max:
            self._accepted.popitem(last=False)
