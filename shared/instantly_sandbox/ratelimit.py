"""The workspace rate limit: N requests per second and M per minute, shared by every key."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Sliding-window limiter. `None` for a window disables it.

    Only admitted requests count: a client hammering through its 429s is not pushed further back.
    """

    def __init__(
        self,
        per_s: float | None = None,
        per_min: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._windows: list[tuple[float, float, deque[float]]] = []
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.configure(per_s, per_min)

    def configure(self, per_s: float | None, per_min: float | None) -> None:
        """Replace the limits (and forget the history)."""
        windows = []
        for limit, span in ((per_s, 1.0), (per_min, 60.0)):
            if limit is not None:
                if limit <= 0:
                    raise ValueError("a rate limit must be positive")
                windows.append((float(limit), span, deque[float]()))
        with self._lock:
            self._windows = windows

    def admit(self) -> bool:
        """Count one request if every window has room; False means answer 429."""
        now = self._monotonic()
        with self._lock:
            for limit, span, hits in self._windows:
                while hits and hits[0] <= now - span:
                    hits.popleft()
                if len(hits) >= limit:
                    return False
            for _, _, hits in self._windows:
                hits.append(now)
        return True
