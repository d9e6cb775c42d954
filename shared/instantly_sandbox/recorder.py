"""The record of every response the sandbox's API produced, for the contract test.

Every answer under `/api/v2` is recorded, errors and 429s included; answers of the `/_sandbox/`
control API are not (they are not Instantly's), nor are responses a fault dropped (no client
ever saw them).

Bounded so that a benchmark paging through 100,000 audit entries does not keep them all: a list
body with more than `SAMPLE_OVER` items is stored with a sample of its items (the first and last
`SAMPLE_EACH_END`), and the log keeps at most `max_entries` responses (oldest dropped first,
counted in `dropped`). Every item of a list has the same schema, so a sample still catches drift.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SAMPLE_OVER = 100
SAMPLE_EACH_END = 25


@dataclass(frozen=True)
class RecordedResponse:
    """One answer. `operation` is `"METHOD /path-template"`, or None for an unknown route.

    `body` is the decoded JSON (or text, for a non-JSON fault page); `items_total` is the length of
    `items` before sampling, or None when the body has no `items` list. `deviations` names the
    deliberate breaks of the document a sandbox variant made in it (see `variants.py`).
    """

    operation: str | None
    method: str
    path: str
    status: int
    body: Any
    items_total: int | None = None
    deviations: tuple[str, ...] = ()

    @property
    def sampled(self) -> bool:
        return (
            self.items_total is not None
            and isinstance(self.body, dict)
            and len(self.body.get("items", ())) < self.items_total
        )


def _sample(body: Any) -> tuple[Any, int | None]:
    if not isinstance(body, dict):
        return body, None
    items = body.get("items")
    if not isinstance(items, list):
        return body, None
    if len(items) <= SAMPLE_OVER:
        return body, len(items)
    sampled = dict(body)
    sampled["items"] = items[:SAMPLE_EACH_END] + items[-SAMPLE_EACH_END:]
    return sampled, len(items)


class ResponseLog:
    """Thread-safe, bounded record of responses; iterate it, `len()` it, `clear()` it."""

    def __init__(self, *, enabled: bool = True, max_entries: int = 20_000) -> None:
        self.enabled = enabled
        self._entries: deque[RecordedResponse] = deque(maxlen=max_entries)
        self._lock = threading.Lock()
        self.dropped = 0
        self.total = 0  # recorded since creation or the last clear(), dropped ones included

    def record(
        self,
        operation: str | None,
        method: str,
        path: str,
        status: int,
        body: Any,
        *,
        deviations: tuple[str, ...] = (),
    ) -> None:
        if not self.enabled:
            return
        stored, total = _sample(body)
        entry = RecordedResponse(operation, method, path, status, stored, total, deviations)
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self.dropped += 1
            self._entries.append(entry)
            self.total += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0
            self.total = 0

    def since(self, total: int) -> list[RecordedResponse]:
        """The responses recorded after the log's `total` was `total` (those still kept)."""
        with self._lock:
            new = self.total - total
            if new <= 0:
                return []
            return list(self._entries)[-new:]

    def snapshot(self) -> list[RecordedResponse]:
        with self._lock:
            return list(self._entries)

    def for_operation(self, operation: str) -> list[RecordedResponse]:
        return [r for r in self.snapshot() if r.operation == operation]

    def __iter__(self) -> Iterator[RecordedResponse]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
