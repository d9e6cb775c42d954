"""What an export holds in memory: the page it is writing, not the pages before it, in every
order (the unordered pass included).

Measured sizes are `make bench`'s (peak memory, 10,000 vs 100,000 entries); these tests hold the
property behind them with reference counting alone (the cyclic collector is off), so a page kept
alive by a stray reference or a reference cycle shows up as alive.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

import pytest

from instantly_guard.audit.checkpoint import MemoryCheckpointStore
from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.exporter import Exporter, ExportOptions
from instantly_guard.instantly.models import AuditLog

from .audit_support import T0, Clock, ListSource, MemorySink, record, spread


class _Page(list[AuditLog]):
    """A page that can be weakly referenced (a plain list cannot)."""


class _Tracked:
    """A `PageSource` noting a weak reference to every page it hands out."""

    def __init__(self, inner: ListSource) -> None:
        self.inner = inner
        self.pages_out: list[weakref.ref[_Page]] = []

    def pages(self, *, start_date: date, end_date: date | None) -> Iterator[Sequence[AuditLog]]:
        for page in self.inner.pages(start_date=start_date, end_date=end_date):
            tracked = _Page(page)
            self.pages_out.append(weakref.ref(tracked))
            yield tracked
            del tracked


class _Watching(MemorySink):
    """Counts, at each write, the pages handed out before the newest that are still alive."""

    def __init__(self, source: _Tracked) -> None:
        super().__init__()
        self.source = source
        self.older_alive: list[int] = []

    def write(self, entries: Sequence[ExportEntry]) -> None:
        older = self.source.pages_out[:-1]
        self.older_alive.append(sum(1 for ref in older if ref() is not None))
        super().write(entries)


@pytest.mark.parametrize("order", ["asc", "desc", "random", "one-millisecond"])
def test_a_pass_lets_each_page_go_once_it_is_written(order: str) -> None:
    records = spread(1000, T0, timedelta(minutes=1))
    probed = 1  # pages the order probe reads before the first write
    if order == "one-millisecond":  # pages show no step: the order stays unknown (the probe
        records = [record(T0) for _ in range(1000)]  # reads a second page, then the pass)
        order, probed = "random", 2
    source = _Tracked(ListSource(records, order=order, page_size=100))
    sink = _Watching(source)
    options = ExportOptions(lookback=timedelta(days=7), checkpoint_interval=timedelta(0))
    exporter = Exporter(
        source, sink, MemoryCheckpointStore(), options, clock=Clock(T0 + timedelta(days=1))
    )
    gc.disable()
    try:
        summary = exporter.run()
    finally:
        gc.enable()
    assert summary.exported == 1000
    assert len(sink.older_alive) >= 10
    # Writing page k, only page k is alive beside the newest handed out (two pages, when the
    # probe read ahead a second one before writing the first).
    assert sink.older_alive[0] == probed - 1
    assert max(sink.older_alive[1:]) == 0
