"""When the client repeats a failed request, and how long it waits first.

Which failures are retried (`should_retry`):

- 429 and transport errors that happened before the request left (connect error, connect or
  pool timeout): Instantly never acted on the request (a rate limiter answers before any handler
  runs), so repeating it is safe for ANY method, `POST /api-keys` included.
- 5xx and the other transport errors (read timeout, connection dropped mid-response): the server
  may have acted. Repeated only when the call is safe to repeat (`session.Call.idempotent`):
  GET, DELETE, PATCH (we always send the full set of changed fields, so the same body gives the
  same state) and `POST /webhooks/{id}/resume` (resuming an active webhook changes nothing).
  Never `POST /api-keys` (a second create leaves an orphaned key), `POST /webhooks` or
  `POST /block-lists-entries` (a second create makes a duplicate; no idempotency keys exist).
- Nothing else: 400, 401, 402, 403 and 404 give the same answer every time. (A bad-key 401 is
  handled apart from retries: the session refreshes the key once, see `session.py`.)

A DELETE repeated after an attempt that may have been carried out can find the resource gone:
that 404 is raised as `AlreadyDeletedError` (a NotFoundError), so the caller knows that "gone"
most likely means "deleted by us" and only the deleted object's body was lost.

How long (`RetryPolicy.delay`): `Retry-After` when the answer carries one (seconds or an HTTP
date); otherwise exponential backoff with full jitter, `uniform(0, min(max_delay, base * 2**n))`,
so many clients that failed together do not retry together. A 429 waits at least
`rate_limited_floor`: Instantly counts per second, and an earlier retry only burns budget.
A `Retry-After` beyond `max_retry_after` is not waited out: the client raises instead, because
the caller (a Cloud Function with a time budget) is better placed to come back later.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from instantly_guard.errors import (
    InstantlyError,
    RateLimitedError,
    ServerError,
    TransportError,
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT` -> seconds (>= 0).

    None when absent or unreadable: a malformed header falls back to backoff, never to an error.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means it said so
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def should_retry(error: InstantlyError, *, idempotent: bool, sent: bool) -> bool:
    """Whether repeating the request may help and cannot do harm (see the module doc).

    `sent` is False only for a transport error that happened before any byte of the request left.
    """
    if isinstance(error, RateLimitedError):
        return True
    if isinstance(error, TransportError):
        return idempotent or not sent
    if isinstance(error, ServerError):
        return idempotent
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait. `random` is injectable for tests."""

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    rate_limited_floor: float = 1.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")

    def backoff(self, retry: int) -> float:
        """Full-jitter backoff before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2.0**retry))
        return self.random() * ceiling

    def delay(
        self, retry: int, error: InstantlyError, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None: do not retry, because
        the server asked for a longer wait than `max_retry_after`.

        `retry_after` is the parsed `Retry-After` of the answer (a 503 may carry one too); for a
        429 it defaults to the error's own `retry_after`.
        """
        if retry_after is None and isinstance(error, RateLimitedError):
            retry_after = error.retry_after
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after
        wait = self.backoff(retry)
        if isinstance(error, RateLimitedError):
            wait = max(wait, self.rate_limited_floor)
        return wait
