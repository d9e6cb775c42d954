"""Edges of a run: clocks that disagree, entries older than the log bucket keeps, a killed run's
lease, and a backfill stopped with Ctrl-C."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from instantly_guard.audit.checkpoint import Checkpoint, MemoryCheckpointStore, RunRecord
from instantly_guard.audit.exporter import Exporter, ExportOptions, StopReason
from instantly_guard.audit.service import build_service
from instantly_guard.audit.settings import AuditSettings
from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.audit.windows import WindowedPageSource
from instantly_guard.cli import main
from instantly_guard.errors import ConfigError

from .audit_support import (
    T0,
    Clock,
    ListSource,
    MemorySink,
    assert_exact,
    clear_guard_env,
    local_env,
    record,
    restored_logging,
    spread,
)

NOW = T0 + timedelta(days=3)
OPTIONS = ExportOptions(lookback=timedelta(days=7), checkpoint_interval=timedelta(0))


def _exporter(source, store, sink, clock, options=OPTIONS):  # type: ignore[no-untyped-def]
    return Exporter(source, sink, store, options, clock=clock)


# -- clock skew ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
def test_an_entry_dated_days_ahead_neither_is_refused_nor_hides_the_entries_before_it(
    order: str,
) -> None:
    records = spread(50, NOW - timedelta(hours=2), timedelta(minutes=1))
    ahead = record(NOW + timedelta(days=2))
    source = ListSource([*records, ahead], order=order, page_size=20)
    sink, store, clock = MemorySink(), MemoryCheckpointStore(), Clock(NOW)

    first = _exporter(source, store, sink, clock).run()

    assert first.exported == 51
    assert first.future_entries == 1
    written = {e.insert_id: e for e in sink.entries}
    # Cloud Logging refuses entries over a day ahead: it is written at the export's time.
    assert written[ahead.id].timestamp == NOW
    assert first.watermark == records[-1].timestamp  # the watermark did not jump two days
    later = record(NOW + timedelta(minutes=1))
    source.records.append(later)
    clock.advance(timedelta(minutes=2))

    second = _exporter(source, store, sink, clock).run()

    assert second.exported == 1  # the later entry, not the one ahead again
    assert_exact(sink.ids, [r.id for r in [*records, ahead, later]])


# -- retention ----------------------------------------------------------------------------------


def test_entries_older_than_the_buckets_retention_are_counted_not_written() -> None:
    old = spread(5, NOW - timedelta(days=40), timedelta(hours=1))
    kept = spread(5, NOW - timedelta(days=10), timedelta(hours=1))
    options = ExportOptions(
        lookback=timedelta(days=60), retention=timedelta(days=30), checkpoint_interval=timedelta(0)
    )
    source = ListSource([*old, *kept], order="random")
    sink, store, clock = MemorySink(), MemoryCheckpointStore(), Clock(NOW)

    summary = _exporter(source, store, sink, clock, options).run()

    assert summary.exported == 5
    assert summary.beyond_retention == 5
    assert summary.oldest_beyond_retention == old[0].timestamp
    assert summary.to_json()["beyond_retention"]["entries"] == 5
    assert_exact(sink.ids, [r.id for r in kept])
    again = _exporter(source, store, sink, clock, options).run()
    assert (again.exported, again.beyond_retention) == (0, 0)


def _gcp_env(**extra: str) -> dict[str, str]:
    return {
        "GUARD_BACKEND": "gcp",
        "GOOGLE_CLOUD_PROJECT": "demo",
        "AUDIT_CHECKPOINT_BUCKET": "bucket",
        "INSTANTLY_API_KEY": "k" * 40,
        **extra,
    }


def test_a_look_back_beyond_the_retention_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="AUDIT_LOG_RETENTION"):
        AuditSettings.from_env(_gcp_env(AUDIT_LOOKBACK="40d"))
    assert AuditSettings.from_env(_gcp_env()).log_retention == timedelta(days=30)
    longer = AuditSettings.from_env(_gcp_env(AUDIT_LOOKBACK="40d", AUDIT_LOG_RETENTION="400d"))
    assert longer.log_retention == timedelta(days=400)


def test_a_backfill_older_than_the_retention_is_refused_with_the_numbers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clear_guard_env(monkeypatch)
    env = _gcp_env(
        GUARD_STATE_DIR=str(tmp_path),
        LOGGING_EMULATOR_HOST="127.0.0.1:9",  # never dialled: the backfill is refused first
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    assert main(["export-audit", "--since", "2000-01-01"]) == 2

    err = capsys.readouterr().err
    assert "keeps 30 days (AUDIT_LOG_RETENTION)" in err
    oldest = (datetime.now(UTC) - timedelta(days=30)).date() + timedelta(days=1)
    assert f"--since {oldest} or later" in err


# -- leases -------------------------------------------------------------------------------------


def test_a_killed_run_blocks_others_for_one_lease_from_its_last_sign_of_life_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = spread(10, NOW - timedelta(hours=1), timedelta(minutes=1))
    store = MemoryCheckpointStore()
    killed = RunRecord(
        "killed",
        started_at=NOW - timedelta(minutes=8),
        heartbeat_at=NOW - timedelta(minutes=1),
    )
    store.write(Checkpoint.starting_at(NOW - timedelta(days=1)).with_run(killed, NOW), 0)
    sink, clock = MemorySink(), Clock(NOW)

    blocked = _exporter(ListSource(records), store, sink, clock).run()

    assert blocked.stopped_reason is StopReason.BUSY
    assert blocked.blocked_by is not None
    assert blocked.blocked_by["run"] == "killed"
    assert blocked.blocked_by["lease_until"] == (NOW + timedelta(minutes=2)).isoformat()
    assert sink.entries == []
    # Three minutes after its last heartbeat (not ten after its start), the next run takes over.
    clock.advance(timedelta(minutes=2, seconds=1))
    taken = _exporter(ListSource(records), store, sink, clock).run()
    assert taken.stopped_reason is StopReason.COMPLETE
    assert taken.exported == 10
    final, _ = store.read()
    assert final is not None
    assert final.run("killed").outcome == "abandoned"  # type: ignore[union-attr]


def test_the_service_logs_why_a_run_did_nothing_and_until_when(
    sandbox_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sb = sandbox_factory(seed="empty")
    store = MemoryCheckpointStore()
    now = datetime.now(UTC)
    killed = RunRecord("killed", started_at=now - timedelta(minutes=1))
    store.write(Checkpoint.starting_at(now - timedelta(days=1)).with_run(killed, now), 0)
    service = build_service(local_env(sb, tmp_path), store=store)
    try:
        with caplog.at_level(logging.WARNING, logger="instantly_guard.audit"):
            response = service.handle("POST", {})
    finally:
        service.close()

    assert response.status == 200
    assert response.body["stopped_reason"] == "run_in_progress"
    lease_until = response.body["blocked_by"]["lease_until"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("did nothing" in m and "killed" in m and lease_until in m for m in messages)


# -- backfills ----------------------------------------------------------------------------------


@pytest.fixture
def local(sandbox_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    sb = sandbox_factory(seed="empty", listing_order="asc")
    return sb, local_env(sb, tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


@pytest.mark.parametrize("order", ["asc", "random"])
def test_a_backfill_stopped_with_ctrl_c_resumes_where_it_stopped(
    local: Any, tmp_path: Path, order: str
) -> None:
    sb, env = local
    sb.set_listing_order(order)  # random: the unordered pass resumes from its cursor
    start = datetime.now(UTC) - timedelta(days=20)
    ids = sb.seed_audit_logs(4000, start=start, step=timedelta(minutes=5))
    since = start.date()
    written: list[int] = []

    def ctrl_c(summary: Any) -> None:  # the terminal's SIGINT arrives while it works
        written.append(summary.exported)
        if summary.exported >= 1500:
            raise KeyboardInterrupt

    service = build_service(env)
    try:
        stopped = service.backfill(since, progress=ctrl_c)
        assert stopped.stopped_reason is StopReason.INTERRUPTED
        assert 1500 <= stopped.exported < 4000
        assert service.backfill_store(since, None).read()[0] is not None
        resumed = service.backfill(since)
    finally:
        service.close()

    assert resumed.stopped_reason is StopReason.COMPLETE
    assert stopped.exported + resumed.exported == 4000  # nothing listed twice
    sink = tmp_path / "audit" / "instantly-audit.jsonl"
    assert_exact([e["insertId"] for e in read_entries(sink)], ids)
    assert service.backfill_store(since, None).read()[0] is None  # done: a rerun starts over


def _start_of_yesterday() -> datetime:
    """The start of yesterday (UTC): a day the export's lookback holds, in the past whatever
    the time of day the test runs at."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


def test_the_summary_reads_as_text_on_request(
    local: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sb, _ = local
    # 20 hours inside one UTC day (yesterday 02:00-21:59), not "ending now": what the listing
    # looks like then depends on the time of day (see the test below for the day boundary).
    start = _start_of_yesterday() + timedelta(hours=2)
    sb.seed_audit_logs(1200, start=start, step=timedelta(minutes=1))

    assert main(["export-audit", "--format", "text"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("Audit export complete.")
    assert "1,200 entries" in out
    assert "order asc" in out


@pytest.mark.parametrize("before_midnight", [1, 2, 16, 17, 90])
def test_the_summary_says_asc_for_entries_that_start_just_before_a_utc_midnight(
    local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], before_midnight: int
) -> None:
    """The day windows cut the first page of an ascending listing at the next day's first
    entry: 20 hours of entries ending at about 19:45-20:00 UTC start with a page of the few
    entries before midnight, too few steps to tell an order. The exporter reads on until the
    order shows (it said "unordered" and took the safe path at those times of day)."""
    sb, _ = local
    start = _start_of_yesterday() - timedelta(minutes=before_midnight)
    ids = sb.seed_audit_logs(1200, start=start, step=timedelta(minutes=1))

    assert main(["export-audit", "--format", "text"]) == 0

    out = capsys.readouterr().out
    assert "1,200 entries" in out
    assert "order asc" in out
    sink = tmp_path / "audit" / "instantly-audit.jsonl"
    assert_exact([e["insertId"] for e in read_entries(sink)], ids)


@pytest.mark.parametrize("before_midnight", [0, 1, 2, 16, 17, 90])
def test_an_ascending_listing_cut_by_a_day_window_is_read_as_ascending(
    before_midnight: int,
) -> None:
    """The same, against a fixed clock: the listing's first page as windowed holds only the
    entries dated before a UTC midnight (`before_midnight` of them, one a minute)."""
    midnight = datetime(2026, 12, 7, tzinfo=UTC)
    records = spread(1200, midnight - timedelta(minutes=before_midnight), timedelta(minutes=1))
    clock = Clock(records[-1].timestamp + timedelta(minutes=1))
    listing = ListSource(records, order="asc", page_size=100, cursors=True)
    source = WindowedPageSource(listing, today=lambda: clock().date(), in_flight=2)
    sink, store = MemorySink(), MemoryCheckpointStore()

    summary = _exporter(source, store, sink, clock).run()

    assert summary.stopped_reason is StopReason.COMPLETE
    assert summary.order == "asc"
    assert summary.exported == 1200
    keys = [e.key for e in sink.entries]
    assert keys == sorted(keys)  # written oldest first, as an ascending listing is
    assert_exact([e.insert_id for e in sink.entries], [r.id for r in records])


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_a_backfill_stopped_with_sigterm_or_sighup_stops_as_with_ctrl_c(
    local: Any, tmp_path: Path, signal_name: str
) -> None:
    """`kill` (or a closed terminal) during a backfill: the command says it was interrupted,
    exits 130 like Ctrl-C, and a rerun at once resumes (no lease left to wait out)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sb, env = local
    start = datetime.now(UTC) - timedelta(days=20)
    ids = sb.seed_audit_logs(6000, start=start, step=timedelta(minutes=4))
    since = start.date().isoformat()
    # One request a second: the backfill is still running when the signal comes.
    slow = {
        **os.environ,
        **env,
        "INSTANTLY_RATE_PER_SECOND": "1",
        "INSTANTLY_RATE_PER_MINUTE": "60",
    }
    command = [sys.executable, "-m", "instantly_guard.cli", "export-audit", "--since", since]
    checkpoint = tmp_path / "audit" / f"backfill-{since}-now.json"
    process = subprocess.Popen(
        [*command, "--format", "json"], env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        sink = tmp_path / "audit" / "instantly-audit.jsonl"
        while not (checkpoint.exists() and sink.exists() and sink.stat().st_size > 0):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the backfill never started writing"
            time.sleep(0.05)
        process.send_signal(getattr(signal, signal_name))
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, err.decode()
    assert json.loads(out)["stopped_reason"] == "interrupted"
    rerun = subprocess.run(
        [*command, "--format", "json"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert json.loads(rerun.stdout)["stopped_reason"] == "complete"
    sink = tmp_path / "audit" / "instantly-audit.jsonl"
    exported = [e["insertId"] for e in read_entries(sink)]
    assert sorted(set(exported)) == sorted(ids)


class _InterruptedAfterLanding(MemoryCheckpointStore):
    """A store whose `nth` write lands and is then interrupted (Ctrl-C, SIGTERM) before the
    caller learns the new generation: a signal during a slow fsync does just that."""

    def __init__(self, nth: int) -> None:
        super().__init__()
        self._left = nth

    def write(self, state: Checkpoint, if_generation: int) -> int:
        generation = super().write(state, if_generation)
        self._left -= 1
        if self._left == 0:
            raise KeyboardInterrupt
        return generation


def test_an_interrupt_inside_a_checkpoint_write_that_landed_still_releases_the_lease() -> None:
    records = spread(200, NOW - timedelta(hours=5), timedelta(minutes=1))
    source = ListSource(records, order="asc", page_size=20)
    sink, store, clock = MemorySink(), _InterruptedAfterLanding(nth=3), Clock(NOW)

    interrupted = _exporter(source, store, sink, clock).run()

    assert interrupted.stopped_reason is StopReason.INTERRUPTED
    stored, _ = store.read()
    assert stored is not None
    assert stored.active_run(NOW, timedelta(hours=1)) is None  # no lease left to wait out
    rerun = _exporter(source, store, sink, clock).run()
    assert rerun.stopped_reason is StopReason.COMPLETE
    assert_exact(sorted(set(sink.ids)), sorted(r.id for r in records))


def test_an_unordered_backfill_killed_mid_pass_resumes_from_its_cursor(
    local: Any, tmp_path: Path
) -> None:
    """SIGKILL, not Ctrl-C: nothing runs on the way out. The checkpoint holds the unordered
    pass's cursor (`sweep`); the rerun lists on from there, never from the start, and what the
    killed run wrote after its last checkpoint is written again, never skipped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sb, env = local
    sb.set_listing_order("random")
    start = datetime.now(UTC) - timedelta(days=20)
    ids = sb.seed_audit_logs(20000, start=start, step=timedelta(days=20) / 20000)
    since = start.date()
    sink = tmp_path / "audit" / "instantly-audit.jsonl"
    checkpoint = tmp_path / "audit" / f"backfill-{since}-now.json"

    def cursor_saved() -> bool:
        try:
            sweep = json.loads(checkpoint.read_text())["state"].get("sweep")
        except (OSError, ValueError, KeyError):
            return False
        return bool(sweep and sweep.get("cursor"))

    command = [sys.executable, "-m", "instantly_guard.cli", "export-audit", "--since", str(since)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Four requests a second: the pass is still running when its cursor is saved.
        env={
            **os.environ,
            **env,
            "INSTANTLY_RATE_PER_SECOND": "4",
            "INSTANTLY_RATE_PER_MINUTE": "240",
        },
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and not cursor_saved():
            assert time.monotonic() < deadline, "the backfill saved no cursor"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    written = sum(1 for _ in read_entries(sink))
    assert 0 < written < len(ids), "killed too late to prove anything"

    # The killed run's claim holds its lease (3 minutes): the rerun comes after it.
    later = timedelta(minutes=4)
    service = build_service(env, clock=lambda: datetime.now(UTC) + later)
    try:
        resumed = service.backfill(since)
    finally:
        service.close()
    assert resumed.stopped_reason is StopReason.COMPLETE
    assert resumed.exported < len(ids)  # it resumed, not started over
    assert_exact([e["insertId"] for e in read_entries(sink)], ids, max_rewrites=written)
