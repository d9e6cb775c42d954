"""Backfills list day windows side by side (audit/windows.py): the same entries, in the same
order, as the one listing they replace, resumable from any page's cursor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from instantly_guard.audit.listing import ClientPageSource, next_cursor
from instantly_guard.audit.service import build_service
from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.audit.windows import WindowedPageSource, parse_window_cursor
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_sandbox import Sandbox

from .audit_support import Clock, assert_exact, local_env, restored_logging

DAYS = 10


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


def _seeded(sb: Sandbox, count: int = 2400, now: datetime | None = None) -> tuple[date, list[str]]:
    """`count` entries over the `DAYS` days before `now` (default: the wall clock)."""
    start = (now or datetime.now(UTC)) - timedelta(days=DAYS)
    ids = sb.seed_audit_logs(count, start=start, step=timedelta(days=DAYS) / count)
    return start.date(), ids


def _ids(pages: Any) -> list[str]:
    return [record.id for page in pages for record in page]


def _client(sb: Sandbox, transport: httpx.BaseTransport | None = None) -> InstantlyClient:
    return InstantlyClient(
        StaticKey(sb.keys["admin"].key),
        sb.base_url,
        rate_limiter=RateLimiter(1000, 60000),
        max_retries=0,
        transport=transport,
    )


VARIANTS = {
    "utc-inclusive": {},
    "behind-utc": {"date_filter_utc_offset": timedelta(hours=-5)},
    "ahead-exclusive": {
        "date_filter_utc_offset": timedelta(hours=9),
        "date_filter_end_exclusive": True,
    },
}


# The clock decides which day windows exist and which of them are empty: just after UTC
# midnight, a timezone behind UTC has no entries yet on the UTC date, so the last window is
# empty; just before, a timezone ahead of UTC has already begun the next day.
CLOCKS = {
    "midday": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
    "after-utc-midnight": datetime(2026, 12, 8, 0, 10, tzinfo=UTC),
    "before-utc-midnight": datetime(2026, 12, 7, 23, 50, tzinfo=UTC),
}


@pytest.mark.parametrize("now", CLOCKS.values(), ids=CLOCKS.keys())
@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_windows_list_exactly_the_one_listing_they_replace(
    variant: dict[str, Any], now: datetime
) -> None:
    with Sandbox(
        seed="empty", listing_order="asc", record_responses=False, clock=lambda: now, **variant
    ) as sb:
        since, ids = _seeded(sb, now=now)
        start = since - timedelta(days=1)
        with _client(sb) as client:
            plain = ClientPageSource(client, page_size=100)
            windowed = WindowedPageSource(plain, today=now.date, in_flight=3, window_pages=2)
            expected = _ids(plain.pages(start_date=start, end_date=None))
            assert expected == ids
            pages = list(windowed.pages(start_date=start, end_date=None))
            assert _ids(pages) == expected
            # Every page's cursor names its window and resumes exactly after that page.
            for n in (0, len(pages) // 3, len(pages) // 2, len(pages) - 2):
                cursor = next_cursor(pages[n])
                assert cursor is not None
                assert parse_window_cursor(cursor) is not None
                rest = windowed.pages(start_date=start, end_date=None, starting_after=cursor)
                assert _ids(rest) == _ids(pages[n + 1 :])
            # The last page names a cursor only when it came full (the API then names one,
            # inside the page's own window); resuming from it finds nothing more.
            last = next_cursor(pages[-1])
            if last is not None:
                assert len(pages[-1]) == 100
                resumed = parse_window_cursor(last)
                assert resumed is not None
                assert resumed[1] is not None
                assert (
                    _ids(windowed.pages(start_date=start, end_date=None, starting_after=last)) == []
                )


@pytest.mark.parametrize("now", CLOCKS.values(), ids=CLOCKS.keys())
@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_resumed_listing_finds_what_the_day_recorded_after_the_last_page(
    variant: dict[str, Any], now: datetime
) -> None:
    """The last page's cursor, stored as a checkpoint's seek, resumes where the listing ended,
    not at the next day: in a timezone behind UTC, the UTC date's first hours are still the
    API's previous day, and what it records then comes after that cursor."""
    clock = Clock(now)
    with Sandbox(
        seed="empty", listing_order="asc", record_responses=False, clock=clock, **variant
    ) as sb:
        since, _ = _seeded(sb, 250, now=now)
        start = since - timedelta(days=1)

        def today() -> date:  # the clock moves on below
            return clock().date()

        with _client(sb) as client:
            windowed = WindowedPageSource(ClientPageSource(client, page_size=100), today=today)
            pages = list(windowed.pages(start_date=start, end_date=None))
            cursors = [c for c in map(next_cursor, pages) if c is not None]
            clock.advance(timedelta(minutes=10))
            later = sb.add_audit_log(1)
            for cursor in cursors:
                rest = _ids(windowed.pages(start_date=start, end_date=None, starting_after=cursor))
                assert rest[-1:] == [later], f"resumed from {cursor!r}"


def test_a_descending_listing_is_passed_through_untouched() -> None:
    with Sandbox(seed="empty", listing_order="desc", record_responses=False) as sb:
        since, _ = _seeded(sb, 1200)
        with _client(sb) as client:
            plain = ClientPageSource(client, page_size=100)
            windowed = WindowedPageSource(plain, today=lambda: datetime.now(UTC).date())
            expected = _ids(plain.pages(start_date=since, end_date=None))
            before = sb.calls["GET /audit-logs"]
            assert _ids(windowed.pages(start_date=since, end_date=None)) == expected
            assert sb.calls["GET /audit-logs"] - before == len(expected) // 100 + 1


class InFlight(httpx.BaseTransport):
    """Real HTTP, counting the most audit-log requests in flight at once."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        try:
            response = self._inner.handle_request(request)
            response.read()
            # Long enough for the other windows' requests to overlap this one.
            threading.Event().wait(0.05)
            return response
        finally:
            with self._lock:
                self._now -= 1

    def close(self) -> None:
        self._inner.close()


def test_a_backfill_lists_several_windows_at_once_and_exports_every_entry(
    tmp_path: Path,
) -> None:
    with Sandbox(seed="empty", listing_order="asc", record_responses=False) as sb:
        since, ids = _seeded(sb, 6000)
        transport = InFlight()
        service = build_service(local_env(sb, tmp_path), client_options={"transport": transport})
        try:
            summary = service.backfill(since)
        finally:
            service.close()
    assert summary.exported == len(ids)
    assert_exact(
        [e["insertId"] for e in read_entries(tmp_path / "audit" / "instantly-audit.jsonl")], ids
    )
    assert transport.most >= 3


def test_a_windowed_backfill_killed_mid_run_resumes_without_a_gap(tmp_path: Path) -> None:
    """SIGKILL, not Ctrl-C: nothing runs on the way out; the checkpoint holds window cursors."""
    import os
    import signal
    import subprocess
    import sys
    import time

    with Sandbox(seed="empty", listing_order="asc", record_responses=False) as sb:
        since, ids = _seeded(sb, 60000)
        env = local_env(sb, tmp_path)
        sink = tmp_path / "audit" / "instantly-audit.jsonl"
        process = subprocess.Popen(
            [sys.executable, "-m", "instantly_guard.cli", "export-audit", "--since", str(since)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
        checkpoint = tmp_path / "audit" / f"backfill-{since}-now.json"
        deadline = time.monotonic() + 120
        # Killed once the checkpoint holds a window's cursor (what a resumed run starts from).
        while process.poll() is None and not (
            checkpoint.exists() and "iw1|" in checkpoint.read_text()
        ):
            assert time.monotonic() < deadline, "the backfill saved no cursor"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        written = sum(1 for _ in read_entries(sink))
        assert 0 < written < len(ids), "killed too late to prove anything"

        # The killed run's claim holds its lease (3 minutes): the rerun comes after it.
        later = timedelta(minutes=4)
        service = build_service(env, clock=lambda: datetime.now(UTC) + later)
        try:
            resumed = service.backfill(since)
        finally:
            service.close()
    assert resumed.stopped_reason == "complete"
    assert resumed.exported < len(ids)  # it resumed, not started over
    # What the killed run wrote after its last checkpoint is written again, never skipped.
    assert_exact(
        [e["insertId"] for e in read_entries(sink)], ids, max_rewrites=len(ids) - resumed.exported
    )


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
@pytest.mark.parametrize("now", CLOCKS.values(), ids=CLOCKS.keys())
@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_backfill_and_the_scheduled_runs_after_it_miss_nothing_around_utc_midnight(
    variant: dict[str, Any], now: datetime, order: str, tmp_path: Path
) -> None:
    """The backfill hands its checkpoint, cursors included, to the scheduled runs; an hour of
    runs ten minutes apart, with entries arriving between them, exports every entry once."""
    clock = Clock(now)
    with Sandbox(
        seed="empty", listing_order=order, record_responses=False, clock=clock, **variant
    ) as sb:
        since, ids = _seeded(sb, 3000, now=now)
        service = build_service(local_env(sb, tmp_path), clock=clock)
        try:
            backfill = service.backfill(since)
            assert backfill.stopped_reason == "complete"
            for _ in range(6):
                clock.advance(timedelta(minutes=10))
                ids += [sb.add_audit_log(1, at=clock() - timedelta(minutes=m)) for m in (9, 5, 1)]
                assert service.run().stopped_reason == "complete"
        finally:
            service.close()
    written = [e["insertId"] for e in read_entries(tmp_path / "audit" / "instantly-audit.jsonl")]
    assert_exact(written, ids)
