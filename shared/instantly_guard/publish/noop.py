"""A publisher that stores nothing. For benchmarks only: it would lose every event."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping


class NoopPublisher:
    """Acknowledges every message without storing it, to measure the receiver without a backend."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        with self._lock:
            return f"noop-{next(self._counter)}"

    def close(self) -> None:
        return None
