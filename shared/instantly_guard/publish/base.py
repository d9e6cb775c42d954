"""The publisher port every backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from instantly_guard.errors import BackendError


class PublishError(BackendError):
    """The message was not acknowledged as stored: the caller must not report success.

    It may still be stored later (a timed-out Pub/Sub publish can complete in the background), so
    consumers drop redeliveries by the message's `event_id` attribute.
    """


@runtime_checkable
class Publisher(Protocol):
    """Stores one message durably, or raises.

    `publish` returns only once the backend acknowledged the message (Pub/Sub returned a message
    id; the outbox file and its directory entry are fsync'd). It waits at most about `timeout`
    seconds and raises `PublishError` on failure or timeout. Implementations are thread-safe.
    """

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        """Store `data` with `attributes`; return the backend's message id."""
        ...

    def close(self) -> None:
        """Release clients and threads. Idempotent."""
        ...
