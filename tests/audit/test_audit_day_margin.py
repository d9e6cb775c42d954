"""The API's day filters in a timezone that is not UTC: the day margin keeps the export exact.

Instantly documents `start_date`/`end_date` only as dates: neither the timezone they are read in
nor whether `end_date` is inclusive. The sandbox can serve them at any UTC offset, with an
inclusive or exclusive end (`date_filter_utc_offset`, `date_filter_end_exclusive`). A scheduled
run lists open-ended from its floor's day (`start_date` only); a backfill also stops at
`end_date = until + margin`. Without a margin the exporter loses entries for good (asserted
below, so these tests demonstrably can fail): after a floor in the first hours of a UTC day at a
negative offset, and at the end of a backfill's last day at a positive offset with an exclusive
end. With the default margin of one day every offset is covered for an inclusive end, negative
offsets for an exclusive one, and a margin of two covers both. The listing order is random
throughout: the safe path, one pass written as it comes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from instantly_guard.audit.checkpoint import Checkpoint, LocalCheckpointStore
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions, StopReason
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey

from .audit_support import Clock, jsonl_ids

H = timedelta(hours=1)
MS = timedelta(milliseconds=1)
OFFSETS = (-12 * H, -5 * H, timedelta(hours=5, minutes=30), 9 * H, 14 * H)
START = datetime(2026, 3, 1, tzinfo=UTC)  # first seeded entry
NOW = datetime(2026, 3, 4, 23, 20, tzinfo=UTC)  # the first run
OPTIONS = ExportOptions(lookback=timedelta(days=5), checkpoint_interval=timedelta(0))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _covered(at: datetime, *, offset: timedelta, margin: int, exclusive: bool) -> bool:
    """Whether the (closed) window of `at`'s UTC day returns `at` from an API whose days start
    at `offset` from UTC."""
    day = _midnight(at.date())
    first = day - timedelta(days=margin) - offset
    last = day + timedelta(days=margin + (0 if exclusive else 1)) - offset
    return first <= at < last


@dataclass
class Scenario:
    """A sandbox whose day filters are at `offset`, entries straddling every UTC midnight and
    every API day boundary, and runs with entries arriving in between."""

    sb: object
    clock: Clock
    tmp: Path
    margin: int
    stamps: dict[str, datetime]
    summaries: list[dict[str, object]]

    def add(self, at: datetime | None = None) -> None:
        entry_id = self.sb.add_audit_log(37, at=at)  # type: ignore[attr-defined]
        self.stamps[entry_id] = at or self.clock.now

    def run(self) -> None:
        client = InstantlyClient(
            StaticKey(self.sb.keys["admin"].key),  # type: ignore[attr-defined]
            self.sb.base_url,  # type: ignore[attr-defined]
            rate_limiter=RateLimiter(1000, 60000),
        )
        with client:
            options = ExportOptions(
                lookback=OPTIONS.lookback,
                checkpoint_interval=OPTIONS.checkpoint_interval,
                day_margin=self.margin,
            )
            source = ReadAheadSource(ClientPageSource(client, page_size=100))
            exporter = Exporter(
                source,
                JsonlSink(self.tmp / "audit.jsonl"),
                LocalCheckpointStore(self.tmp / "checkpoint.json"),
                options,
                clock=self.clock,
            )
            summary = exporter.run()
        assert summary.stopped_reason is StopReason.COMPLETE, summary.to_json()
        self.summaries.append(summary.to_json())

    def exported(self) -> Counter[str]:
        return Counter(jsonl_ids(self.tmp / "audit.jsonl"))


def _boundaries(offset: timedelta) -> Iterator[datetime]:
    """UTC midnights and the API's day boundaries at `offset`, each -1 ms, exactly, +1 ms."""
    for n in range(-1, 7):
        for edge in (START + timedelta(days=n), START + timedelta(days=n) - offset):
            yield from (edge - MS, edge, edge + MS)


def _play(
    sandbox_factory, tmp_path: Path, *, offset: timedelta, exclusive: bool, margin: int
) -> Scenario:  # type: ignore[no-untyped-def]
    clock = Clock(NOW)
    sb = sandbox_factory(
        seed="empty",
        listing_order="random",
        record_responses=False,
        clock=clock,
        date_filter_utc_offset=offset,
        date_filter_end_exclusive=exclusive,
    )
    sc = Scenario(sb, clock, tmp_path, margin, {}, [])
    # Every 7 minutes for four days, and a cluster around every midnight and API day boundary.
    step = timedelta(minutes=7)
    stamps = {START + i * step for i in range((NOW - START) // step)}
    stamps |= {at for o in (timedelta(0), *OFFSETS) for at in _boundaries(o) if START <= at < NOW}
    for at in sorted(stamps):
        sc.add(at)
    sc.run()  # 03-04 23:20
    # Entries arriving between runs, on both sides of the next UTC midnight.
    sc.add(NOW + 30 * timedelta(minutes=1))
    clock.now = datetime(2026, 3, 4, 23, 59, 59, 999_000, tzinfo=UTC)
    sc.add()
    sc.run()  # 03-04 23:59:59.999, still on the 4th
    clock.now += MS
    sc.add()  # 03-05 00:00:00.000
    sc.add(clock.now - 2 * MS)  # a late arrival on the 4th, within the overlap
    sc.run()  # the 4th is now a closed window
    for at in (*_boundaries(offset), *_boundaries(timedelta(0))):
        if clock.now <= at < clock.now + 15 * H:
            sc.add(at)
    clock.now += 15 * H + timedelta(minutes=1)
    sc.add()
    sc.run()  # 03-05 15:01
    clock.now = datetime(2026, 3, 6, 0, 0, 1, tzinfo=UTC)
    sc.add(clock.now - 2 * timedelta(seconds=1))  # 03-05 23:59:59
    sc.add()
    sc.run()  # 03-06 00:00:01
    # A floor in the first hours of a UTC day: the next pass lists from the API's day of that
    # UTC date, which at a negative offset begins hours after the UTC midnight.
    clock.now = datetime(2026, 3, 6, 1, 0, tzinfo=UTC)
    sc.add()
    clock.now += 1 * H
    sc.run()  # 03-06 02:00: watermark 01:00, floor 00:55
    clock.now += 1 * H
    sc.add()  # 03-06 03:00
    clock.now += 10 * timedelta(minutes=1)
    sc.run()
    assert set(sc.stamps) == set(sb.state.audit_logs.ids())
    return sc


CASES = [
    *((o, False, 1) for o in OFFSETS),  # inclusive end: one day covers any offset
    *((o, True, 1) for o in OFFSETS if o <= timedelta(0)),  # exclusive end, offsets <= 0
    *((o, True, 2) for o in OFFSETS),  # exclusive end: two days cover any offset
]


# Every offset and end rule with a margin that covers it, one test id each.
EVERY_MARGIN_CASE = pytest.mark.parametrize(
    ("offset", "exclusive", "margin"),
    CASES,
    ids=[f"{o.total_seconds() / 3600:+g}h-{'excl' if e else 'incl'}-m{m}" for o, e, m in CASES],
)


@EVERY_MARGIN_CASE
def test_with_the_margin_every_entry_is_exported_exactly_once(
    sandbox_factory, tmp_path, offset, exclusive, margin
) -> None:  # type: ignore[no-untyped-def]
    sc = _play(sandbox_factory, tmp_path, offset=offset, exclusive=exclusive, margin=margin)

    exported = sc.exported()
    assert exported == Counter(set(sc.stamps)), (  # every id exactly once: no gap, no duplicate
        f"missing {len(set(sc.stamps) - set(exported))}, "
        f"duplicated {sum(c - 1 for c in exported.values())}"
    )
    assert sum(s["exported"] for s in sc.summaries) == len(sc.stamps)  # type: ignore[misc]


HAZARDS = [(-5 * H, False, 0), (-12 * H, True, 0)]


@pytest.mark.parametrize(
    ("offset", "exclusive", "margin"),
    HAZARDS,
    ids=[f"{o.total_seconds() / 3600:+g}h-{'excl' if e else 'incl'}-m{m}" for o, e, m in HAZARDS],
)
def test_without_enough_margin_entries_near_utc_midnight_are_lost_for_good(
    sandbox_factory, tmp_path, offset, exclusive, margin
) -> None:  # type: ignore[no-untyped-def]
    sc = _play(sandbox_factory, tmp_path, offset=offset, exclusive=exclusive, margin=margin)

    exported = sc.exported()
    missing = set(sc.stamps) - set(exported)
    assert missing, "the hazard did not show: the exactness check could not fail"
    assert max(exported.values()) == 1
    # Lost only where a window's answer does not cover its own UTC day ...
    for entry_id in missing:
        assert not _covered(sc.stamps[entry_id], offset=offset, margin=margin, exclusive=exclusive)
    # ... and only before the API's day start, in the first hours of a UTC day.
    assert all(sc.stamps[i] - _midnight(sc.stamps[i].date()) < -offset for i in missing)


BACKFILL_START = datetime(2026, 3, 2, tzinfo=UTC)
BACKFILL_UNTIL = date(2026, 3, 3)


def _backfill(
    sandbox_factory, tmp_path: Path, *, offset: timedelta, exclusive: bool, margin: int
) -> tuple[set[str], Counter[str], dict[str, datetime]]:  # type: ignore[no-untyped-def]
    """A backfill from 03-02 00:00 until 03-03 of a random listing with entries around every
    UTC midnight and API day boundary: (the ids it must export, the ids it exported)."""
    clock = Clock(datetime(2026, 3, 6, 12, tzinfo=UTC))
    sb = sandbox_factory(
        seed="empty",
        listing_order="random",
        record_responses=False,
        clock=clock,
        date_filter_utc_offset=offset,
        date_filter_end_exclusive=exclusive,
    )
    stamps: dict[str, datetime] = {}
    every = {START + i * timedelta(minutes=13) for i in range(5 * 24 * 60 // 13)}
    every |= {at for o in (timedelta(0), *OFFSETS) for at in _boundaries(o)}
    for at in sorted(every):
        if START <= at < clock.now:
            stamps[sb.add_audit_log(37, at=at)] = at
    store = LocalCheckpointStore(tmp_path / "backfill.json")
    store.write(Checkpoint.starting_at(BACKFILL_START), 0)
    with InstantlyClient(
        StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60000)
    ) as client:
        options = replace(OPTIONS, day_margin=margin)
        source = ReadAheadSource(ClientPageSource(client, page_size=100))
        sink = JsonlSink(tmp_path / "audit.jsonl")
        summary = Exporter(source, sink, store, options, clock=clock).run(until=BACKFILL_UNTIL)
    assert summary.stopped_reason is StopReason.COMPLETE, summary.to_json()
    expected = {
        i for i, at in stamps.items() if at >= BACKFILL_START and at.date() <= BACKFILL_UNTIL
    }
    return expected, Counter(jsonl_ids(tmp_path / "audit.jsonl")), stamps


@EVERY_MARGIN_CASE
def test_a_backfill_with_the_margin_exports_its_days_exactly_once(
    sandbox_factory, tmp_path, offset, exclusive, margin
) -> None:  # type: ignore[no-untyped-def]
    expected, exported, _ = _backfill(
        sandbox_factory, tmp_path, offset=offset, exclusive=exclusive, margin=margin
    )

    assert exported == Counter(expected), (
        f"missing {len(expected - set(exported))}, extra {len(set(exported) - expected)}, "
        f"duplicated {sum(c - 1 for c in exported.values())}"
    )


END_HAZARDS = [(9 * H, True, 1), (timedelta(0), True, 0), (14 * H, False, 0)]


@pytest.mark.parametrize(
    ("offset", "exclusive", "margin"),
    END_HAZARDS,
    ids=[
        f"{o.total_seconds() / 3600:+g}h-{'excl' if e else 'incl'}-m{m}" for o, e, m in END_HAZARDS
    ],
)
def test_a_backfill_without_enough_margin_loses_the_end_of_its_last_day(
    sandbox_factory, tmp_path, offset, exclusive, margin
) -> None:  # type: ignore[no-untyped-def]
    expected, exported, stamps = _backfill(
        sandbox_factory, tmp_path, offset=offset, exclusive=exclusive, margin=margin
    )

    missing = expected - set(exported)
    assert missing, "the hazard did not show: the exactness check could not fail"
    assert max(exported.values()) == 1
    # Lost only after the API's end of the query: late on the backfill's last day.
    assert {stamps[i].date() for i in missing} == {BACKFILL_UNTIL}


def test_sandbox_serves_day_filters_at_its_offset(sandbox_factory) -> None:  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty", record_responses=False, date_filter_utc_offset=-5 * H)
    day = date(2026, 3, 2)
    edge = _midnight(day) + 5 * H  # 00:00 at UTC-5
    inside = [sb.add_audit_log(1, at=at) for at in (edge, edge + 24 * H - MS)]
    outside = [sb.add_audit_log(1, at=at) for at in (edge - MS, edge + 24 * H)]
    with InstantlyClient(StaticKey(sb.keys["admin"].key), sb.base_url) as client:
        listed = {e.id for e in client.iter_audit_logs(start_date=day, end_date=day)}
        assert listed == set(inside)
        sb.set_date_filter(-5 * H, end_exclusive=True)
        assert not list(client.iter_audit_logs(start_date=day, end_date=day))
        following = day + timedelta(days=1)
        wider = {e.id for e in client.iter_audit_logs(start_date=day, end_date=following)}
        assert wider == set(inside)
        sb.reset("empty")  # the setting survives a reset
        assert sb.state.audit_logs.date_filter_end_exclusive
    assert outside
