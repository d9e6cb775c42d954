"""Cut a stream of entries into Cloud Logging writes: at most 1,000 entries and about 9 MB each.

Cloud Logging takes up to 10 MB per `WriteLogEntries` call and recommends 1,000 entries; the
9 MB budget leaves room for the request envelope. Sizes are `ExportEntry.size` estimates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from instantly_guard.audit.entries import ExportEntry

MAX_BATCH_ENTRIES: Final = 1000
MAX_BATCH_BYTES: Final = 9 * 1000 * 1000


def batches(
    entries: Iterable[ExportEntry],
    *,
    max_entries: int = MAX_BATCH_ENTRIES,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[ExportEntry]]:
    """Yield consecutive, order-preserving batches within both limits (never an empty one).

    An entry larger than `max_bytes` on its own (impossible after truncation) gets a batch alone.
    """
    if max_entries < 1 or max_bytes < 1:
        raise ValueError("batch limits must be positive")
    batch: list[ExportEntry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) >= max_entries or size + entry.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch
