"""Audit export: requests against what is new, throughput against a bare fetch of the same
pages, and memory against the size of the backlog, for each listing order.

The sandbox runs in its own process (`instantly-guard sandbox`, driven over its control API), so
neither its CPU nor its memory is counted against the exporter. Requests are counted at the
sandbox (`GET /_sandbox/calls`: every `GET /audit-logs` it answered, read-ahead included).

- requests, for each listing order (asc, desc, random) and date-filter offset (UTC; -5 h; +9 h
  with an exclusive `end_date` and `AUDIT_DAY_MARGIN=2`, the tests' hardest case):
  - catching up `CATCH_UP` entries over the last 28 hours (a fresh checkpoint, look-back 3 days),
    against the ideal ceil(N/1000);
  - a caught-up run that finds 1 and then 1,500 new entries, against ceil(new/1000) + 2;
  - `--since 2000-01-01` on a workspace of `SMALL_WORKSPACE` entries (a backfill over ~9,800
    days), requests and seconds.
- requests catching up `BACKLOG` entries over two days (a fresh checkpoint, look-back 3 days) in
  random order, against the same catch-up in ascending order measured in the same run (the
  unordered path is one listing pass, as the ordered ones).
- entries/s exporting `BACKLOG` entries (one every 30 s) to the JSONL sink, for each order,
  against a bare httpx loop that makes exactly the export's requests (each listing it started,
  as many pages as it fetched), measured in the same round; the median of `ROUNDS` per-round
  ratios. The Instantly client's rate limiter is set out of the way: this is the exporter's own
  cost (at the default share of 25 requests/s the limiter caps any export at 25,000 entries/s).
  One row for the Cloud Logging stand-in (the real gRPC client; the stand-in in its own process).
- peak Python memory (tracemalloc) of a complete export of `SMALL` and of `BACKLOG` entries, for
  each order: every path, the random order's one pass included, holds a page and the one read
  ahead, whatever the backlog.

The machine running this may be shared: the ratios (measured in the same run) are what counts.
Run: `python -m benchmarks audit` (or `make bench`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Row
from instantly_guard.audit.checkpoint import LocalCheckpointStore, MemoryCheckpointStore
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions, Summary
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_guard.instantly.models import AuditLog

ORDERS = ("asc", "desc", "random")
# (label, UTC offset of the API's days, end_date exclusive, day margin that covers it)
OFFSETS = (
    ("UTC", timedelta(0), False, 1),
    ("-5h", timedelta(hours=-5), False, 1),
    ("+9h excl", timedelta(hours=9), True, 2),
)
CATCH_UP = 20_000
SMALL_WORKSPACE = 300
BACKLOG = 100_000
SMALL = 10_000
STEP = timedelta(seconds=30)
ROUNDS = 3
OPTIONS = ExportOptions(lookback=timedelta(days=3))
BIG_OPTIONS = ExportOptions(lookback=STEP * BACKLOG + timedelta(days=1))


@dataclass
class SandboxProcess:
    base_url: str
    control_url: str
    key: str
    process: subprocess.Popen[str]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.control_url}{path}", json=body, timeout=300)
        return response.raise_for_status().json()

    def reset(self, order: str, offset: timedelta = timedelta(0), exclusive: bool = False) -> None:
        keys = self.control("POST", "/reset", {"seed": "empty"})["keys"]
        self.key = keys["admin"]["key"]
        self.control("PUT", "/listing-order", {"order": order})
        body = {"utc_offset_s": offset.total_seconds(), "end_exclusive": exclusive}
        self.control("PUT", "/date-filter", body)

    def seed(self, n: int, *, start: datetime, step: timedelta) -> None:
        body = {
            "n": n,
            "start": start.isoformat(),
            "step_s": step.total_seconds(),
            "activity_types": [1, 9, 11, 37, 38, 20, 26, 30, 34],
        }
        self.control("POST", "/audit-logs/seed", body)

    def requests(self) -> int:
        return int(self.control("GET", "/calls")["calls"].get("GET /audit-logs", 0))


@contextlib.contextmanager
def _sandbox() -> Iterator[SandboxProcess]:
    command = [sys.executable, "-m", "instantly_guard.cli", "sandbox", "--port", "0"]
    process = subprocess.Popen([*command, "--seed", "empty"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        yield SandboxProcess(
            info["base_url"], info["control_url"], info["keys"]["admin"]["key"], process
        )
    finally:
        process.terminate()
        process.wait(30)


@dataclass
class _Recording:
    """A `PageSource` that notes every listing the exporter started and the pages it fetched,
    so the bare loop can make exactly the same requests."""

    inner: ClientPageSource
    listings: list[list[Any]] = field(default_factory=list)

    def pages(
        self, *, start_date: date, end_date: date | None, starting_after: str | None = None
    ) -> Iterator[Sequence[AuditLog]]:
        listing: list[Any] = [start_date, end_date, starting_after, 0]
        self.listings.append(listing)
        for page in self.inner.pages(
            start_date=start_date, end_date=end_date, starting_after=starting_after
        ):
            listing[3] += 1
            yield page


def _client(sb: SandboxProcess) -> InstantlyClient:
    limiter = RateLimiter(1_000_000, 60_000_000)
    return InstantlyClient(StaticKey(sb.key), sb.base_url, rate_limiter=limiter, timeout=60)


def _export(
    sb: SandboxProcess,
    sink: Any,
    store: Any,
    options: ExportOptions,
    *,
    until: date | None = None,
    record: list[list[Any]] | None = None,
) -> tuple[Summary, float]:
    with _client(sb) as client:
        inner = _Recording(ClientPageSource(client))
        # As deployed: pages are read ahead while the current ones are written.
        exporter = Exporter(ReadAheadSource(inner), sink, store, options)
        started = time.perf_counter()
        summary = exporter.run(until=until)
        elapsed = time.perf_counter() - started
    if summary.error is not None:
        raise RuntimeError(f"export failed: {summary.to_json()}")
    if record is not None:
        record.extend(inner.listings)
    return summary, elapsed


def bare_fetch(sb: SandboxProcess, listings: Sequence[Sequence[Any]]) -> float:
    """Make the same requests with httpx alone, parsing each body: seconds."""
    headers = {"Authorization": f"Bearer {sb.key}", "User-Agent": "instantly-guard-bench"}
    started = time.perf_counter()
    with httpx.Client(base_url=sb.base_url, headers=headers, timeout=60) as http:
        for start, end, after, pages in listings:
            cursor = after
            for _ in range(pages):
                params: dict[str, Any] = {"limit": 1000, "start_date": start.isoformat()}
                if end is not None:
                    params["end_date"] = end.isoformat()
                if cursor:
                    params["starting_after"] = cursor
                body = http.get("/audit-logs", params=params).raise_for_status().json()
                cursor = body.get("next_starting_after")
                if not body["items"] or not cursor:
                    break
    return time.perf_counter() - started


# -- requests -----------------------------------------------------------------------------------


def _requests(sb: SandboxProcess) -> list[Row]:
    rows: list[Row] = []
    for order in ORDERS:
        for label, offset, exclusive, margin in OFFSETS:
            options = ExportOptions(lookback=OPTIONS.lookback, day_margin=margin)
            tag = f"{order}, {label}"
            sb.reset(order, offset, exclusive)
            now = datetime.now(UTC)
            span = timedelta(hours=28)
            sb.seed(CATCH_UP, start=now - span, step=span / CATCH_UP)
            with tempfile.TemporaryDirectory() as tmp:
                store = LocalCheckpointStore(Path(tmp) / "checkpoint.json")
                sink = JsonlSink(Path(tmp) / "audit.jsonl")
                before = sb.requests()
                summary, _ = _export(sb, sink, store, options)
                made = sb.requests() - before
                assert summary.exported == CATCH_UP, summary.to_json()
                ideal = math.ceil(CATCH_UP / 1000)
                rows.append(
                    Row(
                        f"catch up {CATCH_UP:,} new ({tag})",
                        made,
                        "requests",
                        ideal,
                        "baseline ceil(N/1000); goal ratio <= 1.3",
                    )
                )
                for new in (1, 1500):
                    start = datetime.now(UTC) - timedelta(seconds=new * 0.01 + 1)
                    sb.seed(new, start=start, step=timedelta(milliseconds=10))
                    before = sb.requests()
                    summary, _ = _export(sb, sink, store, options)
                    made = sb.requests() - before
                    assert summary.exported == new, summary.to_json()
                    rows.append(
                        Row(
                            f"caught-up run, {new:,} new ({tag})",
                            made,
                            "requests",
                            math.ceil(new / 1000) + 2,
                            "baseline = goal ceil(new/1000)+2; ratio <= 1",
                        )
                    )
            sb.reset(order, offset, exclusive)
            now = datetime.now(UTC)
            sb.seed(SMALL_WORKSPACE, start=now - timedelta(days=90), step=timedelta(hours=7))
            with tempfile.TemporaryDirectory() as tmp:
                backfill = ExportOptions(
                    lookback=now - datetime(2000, 1, 1, tzinfo=UTC),
                    day_margin=margin,
                    time_budget=timedelta(days=1),
                )
                before = sb.requests()
                summary, seconds = _export(
                    sb,
                    JsonlSink(Path(tmp) / "audit.jsonl"),
                    MemoryCheckpointStore(),
                    backfill,
                )
                made = sb.requests() - before
                assert summary.exported == SMALL_WORKSPACE, summary.to_json()
                rows.append(
                    Row(
                        f"--since 2000-01-01, {SMALL_WORKSPACE} entries ({tag})",
                        made,
                        "requests",
                        None,
                        f"{seconds:.2f} s; {(now.date() - date(2000, 1, 1)).days:,} days",
                    )
                )
    return rows


def _random_catch_up(sb: SandboxProcess) -> Row:
    """Requests of a fresh catch-up of `BACKLOG` entries over two days, random against asc."""
    made: dict[str, int] = {}
    span = timedelta(days=2)
    for order in ("asc", "random"):
        sb.reset(order)
        sb.seed(BACKLOG, start=datetime.now(UTC) - span, step=span / BACKLOG)
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalCheckpointStore(Path(tmp) / "checkpoint.json")
            sink = JsonlSink(Path(tmp) / "audit.jsonl")
            before = sb.requests()
            summary, _ = _export(sb, sink, store, OPTIONS)
            made[order] = sb.requests() - before
        if summary.exported != BACKLOG:
            raise RuntimeError(f"export incomplete: {summary.to_json()}")
    return Row(
        f"catch up {BACKLOG:,} over 2 days (random order)",
        made["random"],
        "requests",
        made["asc"],
        "fresh checkpoint, look-back 3 days; baseline the same catch-up in asc order (same "
        "run); goal ratio <= 1.5",
    )


# -- throughput and memory ----------------------------------------------------------------------


def _seed_backlog(sb: SandboxProcess, order: str, n: int) -> None:
    sb.reset(order)
    sb.seed(n, start=datetime.now(UTC) - STEP * n, step=STEP)


def _throughput(sb: SandboxProcess) -> list[Row]:
    rows: list[Row] = []
    n = BACKLOG
    for order in ORDERS:
        _seed_backlog(sb, order, n)
        ratios: list[float] = []
        rates: list[float] = []
        bare_rates: list[float] = []
        pages = 0
        for _ in range(ROUNDS):
            with tempfile.TemporaryDirectory() as tmp:
                record: list[list[Any]] = []
                summary, seconds = _export(
                    sb,
                    JsonlSink(Path(tmp) / "audit.jsonl"),
                    LocalCheckpointStore(Path(tmp) / "checkpoint.json"),
                    BIG_OPTIONS,
                    record=record,
                )
                if summary.exported != n:
                    raise RuntimeError(f"export incomplete: {summary.to_json()}")
                pages = sum(listing[3] for listing in record)
                bare = bare_fetch(sb, record)
            rates.append(n / seconds)
            bare_rates.append(n / bare)
            ratios.append(bare / seconds)
        note = (
            f"{n:,} entries, {pages} pages; median of {ROUNDS} per-round ratios against a bare "
            "httpx loop making the same requests (same round)"
        )
        median = statistics.median(ratios)
        bare_median = statistics.median(bare_rates)
        rows.append(
            Row(
                f"export to JSONL sink ({order})",
                statistics.median(rates),
                "entries/s",
                statistics.median(rates) / median,
                note + f"; bare loop median {bare_median:,.0f}/s; goal ratio >= 0.8",
            )
        )
    rows.append(_cloud_logging(sb))
    return rows


_STANDIN = """
import sys
from tests.standins.logging_api import LoggingStandIn
with LoggingStandIn() as standin:
    print(standin.port, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(len(standin.unique_entries()), flush=True)
"""


@contextlib.contextmanager
def _logging_standin(expected: int) -> Iterator[Any]:
    """A real `LoggingServiceV2Client` on a Logging stand-in in its own process, like the
    sandbox: the server's work (decoding and storing the entries) is Cloud Logging's, not the
    exporter's. On exit, checks that the stand-in holds `expected` distinct entries."""
    from tests.standins.logging_api import LoggingStandIn

    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _STANDIN],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        remote = LoggingStandIn()
        remote.port = int(process.stdout.readline())  # only its address is used: `client()`
        client = remote.client()
        try:
            yield client
        finally:
            client.transport.close()
        process.stdin.close()
        stored = int(process.stdout.readline())
        if stored != expected:
            raise RuntimeError(f"Logging stand-in holds {stored} entries, not {expected}")
    finally:
        process.terminate()
        process.wait(30)


def _cloud_logging(sb: SandboxProcess) -> Row:
    """One order (asc), `ROUNDS` rounds, against the bare loop of the same requests."""
    from instantly_guard.audit.sinks.gcp import CloudLoggingSink

    n = BACKLOG
    _seed_backlog(sb, "asc", n)
    ratios: list[float] = []
    rates: list[float] = []
    for _ in range(ROUNDS):
        record: list[list[Any]] = []
        with _logging_standin(n) as client:
            sink = CloudLoggingSink(client, project="bench", log_id="instantly-audit")
            _, seconds = _export(sb, sink, MemoryCheckpointStore(), BIG_OPTIONS, record=record)
        bare = bare_fetch(sb, record)
        rates.append(n / seconds)
        ratios.append(bare / seconds)
    median = statistics.median(ratios)
    return Row(
        "export to Cloud Logging stand-in (asc)",
        statistics.median(rates),
        "entries/s",
        statistics.median(rates) / median,
        f"{n:,} entries; gRPC stand-in in its own process; median of {ROUNDS} per-round ratios",
    )


def _peak_memory(sb: SandboxProcess, order: str, n: int) -> float:
    """Peak traced memory (MiB) of one complete export of `n` entries to the JSONL sink."""
    _seed_backlog(sb, order, n)
    options = ExportOptions(lookback=STEP * n + timedelta(days=1))
    with tempfile.TemporaryDirectory() as tmp:
        sink = JsonlSink(Path(tmp) / "audit.jsonl")
        store = LocalCheckpointStore(Path(tmp) / "checkpoint.json")
        gc.collect()
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            summary, _ = _export(sb, sink, store, options)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    if summary.exported != n:
        raise RuntimeError(f"export incomplete: {summary.to_json()}")
    return (peak - baseline) / (1024 * 1024)


def _memory(sb: SandboxProcess) -> list[Row]:
    rows: list[Row] = []
    for order in ORDERS:
        small = _peak_memory(sb, order, SMALL)
        large = _peak_memory(sb, order, BACKLOG)
        rows.append(
            Row(
                f"peak memory, {BACKLOG:,} vs {SMALL:,} entries ({order})",
                large,
                "MiB",
                small,
                "tracemalloc; goal ratio <= 1.1 (flat)",
            )
        )
    return rows


def run() -> list[Row]:
    with _sandbox() as sb:
        return [*_requests(sb), _random_catch_up(sb), *_throughput(sb), *_memory(sb)]


if __name__ == "__main__":
    for row in run():
        print(row)
