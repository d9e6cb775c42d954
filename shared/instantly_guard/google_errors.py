"""Which Google API errors are transient: the one classification every Google backend uses
(Pub/Sub publisher, Secret Manager store, Cloud Logging sink, Cloud Storage checkpoint).

Built on google.api_core's own, `retry.if_transient_error`: HTTP 500, 429 (gRPC
RESOURCE_EXHAUSTED included), 503, and the transport's connection errors. Widened by what
Google's generated clients also retry by default for these services: 502, 504 (gRPC
DEADLINE_EXCEEDED included), gRPC UNKNOWN, ABORTED (a concurrency conflict: redo the whole
read-modify-write) and CANCELLED; and `RetryError`, a retry wrapper that gave up on transient
errors. Never transient: 501 (not implemented), DATA_LOSS, and every other 4xx.
"""

from __future__ import annotations

from typing import Final

from google.api_core import exceptions as gexc
from google.api_core import retry as core_retry

_ALSO_TRANSIENT: Final = (
    gexc.BadGateway,
    gexc.GatewayTimeout,  # DeadlineExceeded is a GatewayTimeout
    gexc.Unknown,
    gexc.Aborted,
    gexc.Cancelled,
    gexc.RetryError,
)


def is_transient(exc: BaseException) -> bool:
    """True when repeating the call later can succeed (see the module doc)."""
    if not isinstance(exc, Exception):
        return False
    return bool(core_retry.if_transient_error(exc)) or isinstance(exc, _ALSO_TRANSIENT)
