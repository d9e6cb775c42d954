"""A client-side rate limiter: a per-second and a per-minute token bucket, shared process-wide.

Instantly allows 100 requests/s and 6,000/min per workspace, shared by every key and by API v1,
and answers 429 past that. Each process stays well under (20/s and 1,200/min by default,
`INSTANTLY_RATE_PER_SECOND` / `INSTANTLY_RATE_PER_MINUTE`), so several functions and a person
using the dashboard can share one workspace. Every client in a process uses the module's default
limiter unless given its own: the budget is per workspace, not per client object.

Each request takes one token from both buckets. A caller that finds a bucket empty reserves its
token anyway (the balance goes negative) and sleeps until the token exists: waiting callers are
served in arrival order and nobody spins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_PER_SECOND = 20.0
DEFAULT_PER_MINUTE = 1200


class _Bucket:
    """Token bucket: holds up to `capacity` tokens and refills at `rate` tokens per second."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> float:
        """Take one token; return how long to wait until it exists (0 when it already does)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateLimiter:
    """Blocks in `acquire()` until one more request fits both budgets. Thread-safe.

    `per_second` also sets the largest burst (a full bucket), so any one-second window may see up
    to twice `per_second` (a full bucket plus a second of refill): keep `per_second` at most half
    of what the server allows. The per-minute bucket holds a minute's worth but refills at
    `per_minute / 60` per second, so a sustained rate above that is slowed even when the
    per-second budget would allow it. `clock` and `sleep` are injectable for fake-clock tests.
    """

    def __init__(
        self,
        per_second: float = DEFAULT_PER_SECOND,
        per_minute: float = DEFAULT_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._buckets: tuple[_Bucket, ...] = ()
        self.configure(per_second, per_minute)

    @property
    def per_second(self) -> float:
        return self._buckets[0].rate

    @property
    def per_minute(self) -> float:
        return self._buckets[1].rate * 60.0

    def configure(self, per_second: float, per_minute: float) -> None:
        """Replace both budgets (buckets start full). Clients holding this limiter follow at once."""
        if per_second <= 0 or per_minute <= 0:
            raise ValueError("rate limits must be positive")
        now = self._clock()
        with self._lock:
            self._buckets = (
                _Bucket(max(per_second, 1.0), per_second, now),
                _Bucket(max(per_minute, 1.0), per_minute / 60.0, now),
            )

    def acquire(self) -> float:
        """Wait until one request may be sent; return the seconds waited."""
        with self._lock:
            now = self._clock()
            wait = max(bucket.take(now) for bucket in self._buckets)
            wait = max(wait, self._paused_until - now)
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429: the whole workspace is over budget,
        so every thread in the process should wait, not only the one that was told)."""
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def __repr__(self) -> str:
        return f"RateLimiter(per_second={self.per_second:g}, per_minute={self.per_minute:g})"


_default_lock = threading.Lock()
_default: RateLimiter | None = None


def default_limiter() -> RateLimiter:
    """The process-wide limiter every client uses unless given its own (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RateLimiter()
        return _default


def configure_default(per_second: float, per_minute: float) -> RateLimiter:
    """Set the process-wide budgets, e.g. from `CommonSettings.rate_per_second/_per_minute` at
    cold start. Reconfigures the shared instance in place, so existing clients follow."""
    limiter = default_limiter()
    limiter.configure(per_second, per_minute)
    return limiter
