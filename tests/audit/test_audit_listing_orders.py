"""What the export costs, counted at the sandbox, and what it does with the listing's order.

The order of `GET /audit-logs` is read from the pages: ascending and descending listings are
followed page by page (and stopped at the floor, or resumed from a cursor), an order the pages do
not show takes the safe path, and an order that stops holding mid-run falls back to it without
a gap. Every scenario checks the export exact (each id once) against the sandbox's own set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from instantly_guard.audit.checkpoint import LocalCheckpointStore
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions, StopReason
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey

from .audit_support import Clock, assert_exact, jsonl_ids

OPTIONS = ExportOptions(lookback=timedelta(days=3), checkpoint_interval=timedelta(0))


class Rig:
    """A sandbox, a JSONL sink and a file checkpoint, and the requests each run made."""

    def __init__(self, sb, tmp_path: Path, *, options: ExportOptions = OPTIONS) -> None:  # type: ignore[no-untyped-def]
        self.sb = sb
        self.client = InstantlyClient(
            StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60000)
        )
        self.sink_path = tmp_path / "audit.jsonl"
        self.store = LocalCheckpointStore(tmp_path / "checkpoint.json")
        self.options = options

    def run(self, *, page_size: int = 1000, **kwargs):  # type: ignore[no-untyped-def]
        """One run as deployed (read-ahead); returns (summary, requests made)."""
        source = ReadAheadSource(ClientPageSource(self.client, page_size=page_size))
        exporter = Exporter(source, JsonlSink(self.sink_path), self.store, self.options, **kwargs)
        before = self.sb.calls["GET /audit-logs"]
        summary = exporter.run()
        return summary, self.sb.calls["GET /audit-logs"] - before

    def exported(self) -> list[str]:
        return jsonl_ids(self.sink_path)

    def expected(self) -> list[str]:
        return self.sb.state.audit_logs.ids()


@pytest.fixture
def rig(sandbox_factory, tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    made: list[Rig] = []

    def make(order: str, n: int, span: timedelta, **kwargs):  # type: ignore[no-untyped-def]
        sb = sandbox_factory(seed="empty", listing_order=order, record_responses=False)
        if n:
            sb.seed_audit_logs(n, step=span / n, activity_types=(1, 9, 37, 38))
        made.append(Rig(sb, tmp_path, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.client.close()


def _add(sb, n: int) -> None:  # type: ignore[no-untyped-def]
    start = datetime.now(UTC) - timedelta(seconds=2)
    sb.seed_audit_logs(n, start=start, step=timedelta(milliseconds=1), activity_types=(1,))


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_caught_up_run_costs_about_what_is_new(rig, order) -> None:  # type: ignore[no-untyped-def]
    r = rig(order, 5000, timedelta(hours=20))  # yesterday and today: ~5 pages each run before
    first, requests = r.run()
    assert first.stopped_reason is StopReason.COMPLETE
    assert first.order == order
    assert requests <= math.ceil(5000 / 1000) + 1

    for new in (0, 1, 1500):
        _add(r.sb, new)
        summary, requests = r.run()
        assert summary.exported == new, summary.to_json()
        assert requests <= math.ceil(new / 1000) + 2, (new, requests)
    assert_exact(r.exported(), r.expected())


def test_an_unordered_listing_takes_the_safe_path_and_stays_exact(rig) -> None:  # type: ignore[no-untyped-def]
    r = rig("random", 3000, timedelta(hours=20))
    first, _ = r.run(page_size=200)
    _add(r.sb, 700)
    second, _ = r.run(page_size=200)

    assert (first.order, second.order) == ("unordered", "unordered")
    assert first.exported + second.exported == 3700
    assert_exact(r.exported(), r.expected())


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
def test_a_backfill_over_years_of_a_sparse_workspace_takes_a_few_requests(rig, order) -> None:  # type: ignore[no-untyped-def]
    # Before: one listing per day, ~400 requests for this look-back (9,800 from 2000-01-01).
    options = ExportOptions(lookback=timedelta(days=400), checkpoint_interval=timedelta(0))
    r = rig(order, 300, timedelta(days=90), options=options)

    summary, requests = r.run()

    assert summary.stopped_reason is StopReason.COMPLETE
    assert requests <= 3
    assert_exact(r.exported(), r.expected())


def test_a_descending_pass_cut_short_resumes_from_its_cursor(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    options = ExportOptions(
        lookback=timedelta(days=3),
        checkpoint_interval=timedelta(0),
        time_budget=timedelta(seconds=10),
    )
    r = rig("desc", 6000, timedelta(hours=30), options=options)
    # Each look at the clock is a second later: the budget ends after a few pages.
    clock = Clock(datetime.now(UTC), tick=timedelta(seconds=1))

    cut, _ = r.run(page_size=500, clock=clock)
    assert cut.stopped_reason is StopReason.TIME_BUDGET
    state, _ = r.store.read()
    assert state is not None
    assert state.descent is not None
    assert state.descent.cursor
    _add(r.sb, 40)  # arriving above the pass meanwhile
    rest, rest_requests = r.run(page_size=500)

    assert rest.stopped_reason is StopReason.COMPLETE
    assert cut.exported + rest.exported == 6040
    # Resumed from the cursor, not from the top: what the cut run did not list, the pass over
    # the new top, and one page of slack (a page that ends exactly at the floor).
    assert cut.pages >= 2
    assert rest_requests <= math.ceil(6000 / 500) - cut.pages + 3, (cut.pages, rest_requests)
    assert_exact(r.exported(), r.expected())
    state, _ = r.store.read()
    assert state is not None
    assert state.descent is None


def test_an_order_that_stops_holding_falls_back_to_the_safe_path_without_a_gap(rig) -> None:  # type: ignore[no-untyped-def]
    r = rig("asc", 4000, timedelta(hours=20))
    first, _ = r.run(page_size=500)
    assert first.order == "asc"
    state, _ = r.store.read()
    assert state is not None
    assert state.seeks  # the next run would resume from a cursor

    r.sb.set_listing_order("random")  # what was ascending is not any more
    _add(r.sb, 600)
    second, _ = r.run(page_size=500)

    assert second.stopped_reason is StopReason.COMPLETE
    assert second.order == "unordered"
    assert_exact(r.exported(), r.expected())
    _add(r.sb, 5)
    third, _ = r.run(page_size=500)
    assert third.exported == 5
    assert_exact(r.exported(), r.expected())


def test_a_random_order_catch_up_costs_the_requests_of_an_ordered_one(
    sandbox_factory, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """One pass over the listing, written as it comes; before, sorted windows with a day margin
    each, split at AUDIT_MAX_BUFFERED, cost about 6 times the requests (632 against 101 for
    the benchmark's 100,000 entries)."""
    requests: dict[str, int] = {}
    for order in ("asc", "random"):
        sb = sandbox_factory(seed="empty", listing_order=order, record_responses=False)
        sb.seed_audit_logs(12000, step=timedelta(days=2) / 12000)
        (tmp_path / order).mkdir()
        r = Rig(sb, tmp_path / order)
        try:
            summary, requests[order] = r.run()
        finally:
            r.client.close()
        assert summary.stopped_reason is StopReason.COMPLETE
        assert_exact(r.exported(), r.expected())

    assert requests["asc"] == math.ceil(12000 / 1000) + 1
    assert requests["random"] <= requests["asc"]


def test_an_unordered_pass_cut_short_resumes_from_its_cursor(rig) -> None:  # type: ignore[no-untyped-def]
    options = ExportOptions(
        lookback=timedelta(days=3),
        checkpoint_interval=timedelta(0),
        time_budget=timedelta(seconds=10),
    )
    r = rig("random", 6000, timedelta(hours=30), options=options)
    # Each look at the clock is a second later: the budget ends after a few pages.
    clock = Clock(datetime.now(UTC), tick=timedelta(seconds=1))

    cut, _ = r.run(page_size=500, clock=clock)
    assert cut.stopped_reason is StopReason.TIME_BUDGET
    assert cut.order == "unordered"
    state, _ = r.store.read()
    assert state is not None
    assert state.sweep is not None
    assert state.sweep.cursor
    _add(r.sb, 40)  # arriving meanwhile: some ahead of the cursor, some behind it
    rest, rest_requests = r.run(page_size=500)
    assert rest.stopped_reason is StopReason.COMPLETE
    # Resumed from the cursor, not from the start: what the cut run did not list.
    assert cut.pages >= 2
    assert rest_requests <= math.ceil(6040 / 500) + 1 - cut.pages + 1, (cut.pages, rest_requests)
    state, _ = r.store.read()
    assert state is not None
    assert state.sweep is None
    last, _ = r.run(page_size=500)  # the pass's start is its watermark's cap: the rest is found

    assert cut.exported + rest.exported + last.exported == 6040
    assert_exact(r.exported(), r.expected())
