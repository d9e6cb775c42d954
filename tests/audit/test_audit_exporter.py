"""The export algorithm against an in-memory page source: order, exactness, memory bound,
checkpoint, time budget, Scheduler deduplication, leases and failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import pytest

from instantly_guard.audit.checkpoint import Checkpoint, MemoryCheckpointStore
from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.exporter import Exporter, ExportOptions, StopReason
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.errors import ConflictError, ScopeError, ServerError

from .audit_support import T0, Clock, ListSource, MemorySink, assert_exact, record, spread

NOW = T0 + timedelta(days=3)
OPTIONS = ExportOptions(lookback=timedelta(days=7), checkpoint_interval=timedelta(0))


def make(
    records,
    *,
    order="random",
    page_size=100,
    options=OPTIONS,
    clock=None,
    store=None,
    sink=None,
    cursors=False,
):
    source = ListSource(records, order=order, page_size=page_size, cursors=cursors)
    sink = sink or MemorySink()
    store = store or MemoryCheckpointStore()
    exporter = Exporter(source, sink, store, options, clock=clock or Clock(NOW))
    return exporter, source, sink, store


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
def test_every_entry_is_exported_once_whatever_the_listing_order(order: str) -> None:
    records = spread(2500, NOW - timedelta(days=2, hours=5), timedelta(seconds=70))
    exporter, source, sink, _ = make(records, order=order)

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.COMPLETE
    assert summary.exported == 2500
    assert_exact(sink.ids, [r.id for r in records])
    keys = [e.key for e in sink.entries]
    pages = [keys[i : i + 100] for i in range(0, len(keys), 100)]
    # Page by page as listed, each page oldest first (a random listing: in no order between
    # pages; a descending one: newest pages first).
    assert all(page == sorted(page) for page in pages)
    if order == "desc":
        assert [page[0] for page in pages] == sorted((page[0] for page in pages), reverse=True)
    if order == "asc":
        assert keys == sorted(keys)
    assert summary.order == ("unordered" if order == "random" else order)
    assert summary.pages == source.pages_served
    assert summary.watermark == max(r.timestamp for r in records)


def test_a_second_run_exports_nothing_and_counts_what_it_skipped() -> None:
    records = spread(300, NOW - timedelta(hours=5), timedelta(seconds=30))
    exporter, _, sink, _ = make(records)
    exporter.run()

    again = exporter.run()

    assert again.exported == 0
    assert again.duplicates_skipped == 300  # all of them are on the checkpoint's day
    assert len(sink.entries) == 300


def test_entries_sharing_the_watermark_millisecond_are_not_lost() -> None:
    at = NOW - timedelta(hours=1)
    first = [record(at) for _ in range(3)]
    exporter, source, sink, _ = make(first)
    exporter.run()
    # Same millisecond, ids that may sort before or after the ones already exported.
    later = [record(at, entry_id="00000000-0000-7000-8000-000000000001"), record(at)]
    source.records.extend(later)

    summary = exporter.run()

    assert summary.exported == 2
    assert_exact(sink.ids, [r.id for r in first + later])


def test_an_entry_that_shows_up_late_within_the_overlap_is_exported() -> None:
    # Older than the clock skew allowed: an unordered pass moves the watermark up to its start
    # less the skew (5 min), here to the newest entry (NOW - 11 min).
    records = spread(50, NOW - timedelta(minutes=60), timedelta(minutes=1))
    exporter, source, sink, _ = make(records)
    exporter.run()
    late = record(NOW - timedelta(minutes=13))  # behind the watermark, inside the 5 min overlap
    source.records.append(late)

    summary = exporter.run()

    assert summary.exported == 1
    assert summary.late_entries == 1
    assert sink.ids[-1] == late.id


def test_an_entry_older_than_the_overlap_counts_as_exported() -> None:
    records = spread(10, NOW - timedelta(minutes=30), timedelta(minutes=1))
    exporter, source, _sink, _ = make(records)
    exporter.run()
    source.records.append(record(NOW - timedelta(hours=2)))

    assert exporter.run().exported == 0


def test_first_run_starts_at_the_lookback() -> None:
    old = record(NOW - timedelta(days=8))
    recent = record(NOW - timedelta(days=6))
    exporter, source, sink, _ = make([old, recent])

    exporter.run()

    assert sink.ids == [recent.id]  # the first window's margin lists `old` too; it is not kept
    assert source.listings[0][0] == (NOW - timedelta(days=7 + OPTIONS.day_margin)).date()


@pytest.mark.parametrize("margin", [0, 1, 2])
def test_a_range_that_fits_the_buffer_is_listed_once_from_the_floors_day(margin: int) -> None:
    """Not one listing per day: empty days cost nothing (the walk of the look-back's seven
    days, one request each, is what this replaced)."""
    options = replace(OPTIONS, day_margin=margin)
    records = spread(10, NOW - timedelta(days=2), timedelta(hours=5))
    exporter, source, sink, _ = make(records, options=options)

    summary = exporter.run()

    floor_day = (NOW - timedelta(days=7)).date()
    assert source.listings == [(floor_day - timedelta(days=margin), None)]
    assert summary.pages == 1
    assert_exact(sink.ids, [r.id for r in records])


@pytest.mark.parametrize("cursors", [False, True])
def test_an_unordered_backlog_is_one_listing_written_page_by_page(cursors: bool) -> None:
    """Nothing buffered beyond the page: each page's new entries are written (sorted) before
    the next page is used, and the whole backlog is one listing from the floor's day."""
    records = spread(2300, NOW - timedelta(hours=10), timedelta(seconds=10))
    exporter, source, sink, store = make(records, cursors=cursors)
    written_before: list[int] = []
    source.on_page = lambda _: written_before.append(len(sink.entries))

    summary = exporter.run()

    assert_exact(sink.ids, [r.id for r in records])
    assert summary.days == 1
    assert source.listings == [((NOW - timedelta(days=8)).date(), None)]
    assert max(sink.batches) <= 100
    # Asked for page k+1, the exporter has written pages 1..k, and nothing more.
    assert written_before == [100 * k for k in range(1, len(written_before) + 1)]
    state, _ = store.read()
    assert state is not None
    assert state.sweep is None  # the pass is done: nothing owed


def test_batches_respect_the_entry_limit() -> None:
    records = spread(2500, NOW - timedelta(hours=3), timedelta(seconds=1))
    exporter, _, sink, _ = make(records, page_size=1000)

    summary = exporter.run()

    assert sink.batches == [1000, 1000, 500]
    assert summary.batches == 3


def test_checkpoint_advances_after_each_batch() -> None:
    records = spread(2500, NOW - timedelta(hours=3), timedelta(seconds=1))
    store = MemoryCheckpointStore()
    seen: list[int] = []

    class Watching(MemorySink):
        def write(self, entries):  # type: ignore[no-untyped-def]
            state, _ = store.read()
            seen.append(state.exported_total if state else 0)
            super().write(entries)

    exporter, *_ = make(records, sink=Watching(), store=store, page_size=1000)
    exporter.run()

    assert seen == [0, 1000, 2000]


def test_time_budget_stops_with_a_consistent_checkpoint_and_the_next_run_resumes() -> None:
    records = spread(3000, NOW - timedelta(hours=3), timedelta(seconds=1))
    clock = Clock(NOW)
    # The look-back stays within today: yesterday's window would list today's entries again
    # (its day margin) and spend the budget on pages before any write.
    options = ExportOptions(
        lookback=timedelta(hours=4),
        time_budget=timedelta(seconds=50),
        checkpoint_interval=timedelta(0),
    )

    class SlowSink(MemorySink):
        def write(self, entries):  # type: ignore[no-untyped-def]
            super().write(entries)
            clock.advance(timedelta(seconds=10))  # each write takes 10 s

    exporter, source, sink, store = make(
        records, options=options, clock=clock, page_size=100, sink=SlowSink(), cursors=True
    )
    source.on_page = lambda _: clock.advance(timedelta(seconds=1))  # each page takes 1 s

    first = exporter.run()

    assert first.stopped_reason is StopReason.TIME_BUDGET
    # Each page is written as it comes: 11 s a page, the budget is spent after five.
    assert first.exported == 500
    state, _ = store.read()
    assert state is not None
    assert state.exported_total == first.exported == len(sink.entries)
    assert state.run(first.run).outcome == "time_budget"
    assert state.sweep is not None
    assert state.sweep.cursor is not None  # where the pass goes on
    stopped = 1
    while exporter.run().stopped_reason is StopReason.TIME_BUDGET:  # each resumes the pass
        stopped += 1
        clock.advance(timedelta(minutes=5))
    assert stopped == 5  # 30 pages, 5 a run: the sixth run completes
    # Every entry once: a resumed pass lists on from its cursor, never the pages before.
    assert_exact(sink.ids, [r.id for r in records])


def test_a_redelivered_scheduler_run_does_not_export_again() -> None:
    records = spread(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    exporter, source, _sink, _ = make(records)
    key = "audit-export@2026-03-04T12:00:00Z"
    exporter.run(run_key=key)
    source.records.append(record(NOW - timedelta(seconds=5)))

    again = exporter.run(run_key=key)

    assert again.stopped_reason is StopReason.DUPLICATE
    assert again.exported == 0
    assert exporter.run(run_key="audit-export@2026-03-04T12:05:00Z").exported == 1


def test_a_retry_of_a_failed_scheduler_run_does_export() -> None:
    records = spread(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    exporter, source, _sink, _ = make(records)
    key = "audit-export@2026-03-04T12:00:00Z"
    source.fail = ServerError("boom", method="GET", path="/audit-logs", status=500)
    failed = exporter.run(run_key=key)
    assert failed.stopped_reason is StopReason.FAILED
    source.fail = None

    retry = exporter.run(run_key=key)

    assert retry.stopped_reason is StopReason.COMPLETE
    assert retry.exported == 20


def test_concurrent_deliveries_of_one_scheduler_run_export_once() -> None:
    records = spread(3000, NOW - timedelta(hours=3), timedelta(seconds=1))
    exporter, _, sink, _ = make(records)
    key = "audit-export@2026-03-04T12:00:00Z"
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(exporter.run(run_key=key))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    reasons = sorted(r.stopped_reason.value for r in results)
    assert reasons.count("complete") == 1
    assert set(reasons) <= {"complete", "duplicate_delivery", "lost_race"}
    assert_exact(sink.ids, [r.id for r in records])


def test_a_run_started_while_another_holds_the_lease_stops_at_once() -> None:
    exporter, _, sink, store = make(spread(10, NOW - timedelta(hours=1), timedelta(minutes=1)))
    state = Checkpoint.starting_at(NOW - timedelta(days=1))
    from instantly_guard.audit.checkpoint import RunRecord

    store.write(state.with_run(RunRecord("other", started_at=NOW - timedelta(minutes=1)), NOW), 0)

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.BUSY
    assert sink.entries == []


def test_a_stale_lease_is_taken_over() -> None:
    from instantly_guard.audit.checkpoint import RunRecord

    exporter, _, sink, store = make(spread(10, NOW - timedelta(hours=1), timedelta(minutes=1)))
    state = Checkpoint.starting_at(NOW - timedelta(days=1))
    store.write(state.with_run(RunRecord("crashed", started_at=NOW - timedelta(hours=1)), NOW), 0)

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.COMPLETE
    assert len(sink.entries) == 10
    final, _ = store.read()
    assert final is not None
    assert final.run("crashed").outcome == "abandoned"


def test_losing_the_checkpoint_mid_run_stops_cleanly_without_further_writes() -> None:
    records = spread(3000, NOW - timedelta(hours=3), timedelta(seconds=1))
    store = MemoryCheckpointStore()

    class Intruder(MemorySink):
        def write(self, entries):  # type: ignore[no-untyped-def]
            super().write(entries)
            if len(self.batches) == 1:  # another run writes the checkpoint meanwhile
                state, generation = store.read()
                store.write(state, generation)

    exporter, _, sink, _ = make(records, sink=Intruder(), store=store, page_size=1000)

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.LOST_RACE
    assert summary.error is None
    assert sink.batches == [1000]


def test_an_instantly_failure_ends_the_run_with_the_error_and_keeps_what_was_written() -> None:
    records = spread(2500, NOW - timedelta(hours=3), timedelta(seconds=1))
    exporter, source, sink, store = make(records, page_size=1000)
    fail_at = {"n": 0}

    def on_page(index: int) -> None:
        fail_at["n"] = index

    source.on_page = on_page
    error = ScopeError(
        "Invalid scope",
        method="GET",
        path="/audit-logs",
        status=401,
        required=("audit_logs:read",),
        found=("leads:read",),
    )
    source.fail = error

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.FAILED
    assert summary.error is error
    state, _ = store.read()
    assert state is not None
    assert state.run(summary.run).outcome == "failed"  # the lease is released
    assert sink.entries == []


def test_a_sink_crash_mid_batch_then_a_rerun_exports_everything_with_one_batch_rewritten() -> None:
    records = spread(3500, NOW - timedelta(hours=3), timedelta(seconds=1))
    sink = MemorySink()
    sink.fail_after = 1500
    exporter, *_ = make(records, sink=sink, page_size=1000, cursors=True)

    crashed = exporter.run()
    assert crashed.stopped_reason is StopReason.FAILED
    assert crashed.exported == 1000
    rerun = exporter.run()

    assert rerun.stopped_reason is StopReason.COMPLETE
    assert_exact(sink.ids, [r.id for r in records], max_rewrites=500)


def test_a_backfill_window_stops_after_its_last_day() -> None:
    records = spread(100, NOW - timedelta(days=3), timedelta(hours=1))
    start = (NOW - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    store = MemoryCheckpointStore(Checkpoint.starting_at(start))
    exporter, source, sink, _ = make(records, store=store)
    until = (NOW - timedelta(days=2)).date()

    exporter.run(until=until)

    expected = [r.id for r in records if r.timestamp.date() <= until]
    assert_exact(sink.ids, expected)
    assert all(end is not None for _, end in source.listings)


def test_checkpoint_recent_set_is_capped_by_raising_the_floor() -> None:
    state = Checkpoint.starting_at(T0)
    pairs = [(T0 + timedelta(milliseconds=i), f"id-{i:05d}") for i in range(100)]

    advanced = state.advanced(pairs, overlap=timedelta(hours=1), recent_cap=10)

    assert len(advanced.recent) == 10
    assert advanced.floor == T0 + timedelta(milliseconds=90)
    assert not advanced.is_new(T0 + timedelta(milliseconds=95), "id-00095")
    assert advanced.is_new(T0 + timedelta(milliseconds=95), "id-unseen")
    assert not advanced.is_new(T0 + timedelta(milliseconds=50), "id-unseen")  # below the floor


def test_an_unordered_pass_never_raises_the_floor_past_its_cap_and_forgets_ids_instead() -> None:
    """Above the pass's cap an entry may have been missed (created behind the cursor): raising
    the floor there would skip it for good. Over `recent_cap`, the newest ids are kept and the
    others forgotten: the next pass writes those again (duplicates), never a gap."""
    state = Checkpoint.starting_at(T0)
    cap = T0 + timedelta(milliseconds=50)
    pairs = [(T0 + timedelta(milliseconds=i), f"id-{i:05d}") for i in range(100)]

    advanced = state.advanced(
        pairs, overlap=timedelta(hours=1), recent_cap=10, horizon=cap, ceiling=cap
    )

    assert advanced.watermark == cap
    assert advanced.floor == cap  # not the tenth newest (T0 + 90 ms)
    assert len(advanced.recent) == 10
    assert not advanced.is_new(T0 + timedelta(milliseconds=95), "id-00095")
    assert advanced.is_new(T0 + timedelta(milliseconds=70), "id-unseen")  # not skipped
    assert advanced.is_new(T0 + timedelta(milliseconds=70), "id-00070")  # written again


def test_memory_store_refuses_a_stale_generation() -> None:
    store = MemoryCheckpointStore()
    generation = store.write(Checkpoint.starting_at(T0), 0)
    with pytest.raises(ConflictError):
        store.write(Checkpoint.starting_at(T0), 0)
    assert store.write(Checkpoint.starting_at(T0), generation) == generation + 1


# -- read-ahead ---------------------------------------------------------------------------------


def test_read_ahead_fetches_the_next_window_while_writing_and_changes_nothing() -> None:
    records = spread(3000, NOW - timedelta(days=3), timedelta(minutes=1))
    source = ListSource(records, page_size=100, cursors=True)
    sink = MemorySink()
    store = MemoryCheckpointStore()
    exporter = Exporter(ReadAheadSource(source, depth=2), sink, store, OPTIONS, clock=Clock(NOW))

    summary = exporter.run()
    source.records.extend(spread(300, NOW - timedelta(minutes=30), timedelta(seconds=1)))
    again = exporter.run()  # the order known: the pass is read ahead from its start

    assert (summary.stopped_reason, again.stopped_reason) == (StopReason.COMPLETE,) * 2
    assert_exact(sink.ids, [r.id for r in source.records])
    # The probe's listing is the pass: one listing a run, and every page listed was used.
    assert len(source.listings) == 2
    assert source.pages_served == summary.pages + again.pages
    assert not [t for t in threading.enumerate() if t.name == "audit-readahead"]


@pytest.mark.parametrize("depth", [1, 2])
def test_read_ahead_fetches_at_most_depth_pages_beyond_the_one_being_written(depth: int) -> None:
    records = spread(1000, NOW - timedelta(hours=20), timedelta(minutes=1))
    source = ListSource(records, order="asc", page_size=100)
    ahead: list[int] = []

    class SlowSink(MemorySink):
        def write(self, entries: Sequence[ExportEntry]) -> None:
            time.sleep(0.02)  # every chance for the read-ahead to run on
            ahead.append(source.pages_served - (len(self.batches) + 1))
            super().write(entries)

    sink = SlowSink()
    exporter = Exporter(
        ReadAheadSource(source, depth=depth),
        sink,
        MemoryCheckpointStore(),
        OPTIONS,
        clock=Clock(NOW),
    )

    assert exporter.run().exported == 1000
    assert len(ahead) == 10
    assert max(ahead) == depth


def test_a_prefetch_for_another_window_is_discarded() -> None:
    day = NOW.date()
    source = ListSource([record(NOW - timedelta(days=1)), record(NOW)], page_size=1)
    read_ahead = ReadAheadSource(source)
    read_ahead.prefetch(start_date=day - timedelta(days=1), end_date=day - timedelta(days=1))

    pages = list(read_ahead.pages(start_date=day, end_date=None))

    assert [p[0].timestamp for p in pages] == [NOW]
    assert not [t for t in threading.enumerate() if t.name == "audit-readahead"]


def test_an_error_while_reading_ahead_is_raised_where_the_page_is_consumed() -> None:
    day = NOW.date()
    source = ListSource([record(NOW)], page_size=1)
    source.fail = ServerError("boom", method="GET", path="/audit-logs", status=503)
    read_ahead = ReadAheadSource(source)
    read_ahead.prefetch(start_date=day, end_date=None)

    with pytest.raises(ServerError, match="boom"):
        list(read_ahead.pages(start_date=day, end_date=None))


def test_a_run_stopped_by_its_budget_leaves_no_read_ahead_thread_behind() -> None:
    records = spread(3000, NOW - timedelta(days=3), timedelta(minutes=2))
    clock = Clock(NOW)
    source = ListSource(records, page_size=100)
    source.on_page = lambda _: clock.advance(timedelta(seconds=2))
    options = ExportOptions(time_budget=timedelta(seconds=30), checkpoint_interval=timedelta(0))
    exporter = Exporter(
        ReadAheadSource(source), MemorySink(), MemoryCheckpointStore(), options, clock=clock
    )

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.TIME_BUDGET
    assert not [t for t in threading.enumerate() if t.name == "audit-readahead"]
