"""Audit export: throughput against the cost of fetching the same pages, and memory against the
size of the backlog.

The sandbox runs in its own process (`instantly-guard sandbox`, seeded over its control API), so
neither its CPU nor its memory is counted against the exporter.

- entries/s exporting `BACKLOG` entries (listing order random, one entry every 30 s, so ~35 day
  windows of ~2,900 entries, 1,000 per page) to the JSONL sink (with the file checkpoint) and to
  the Cloud Logging stand-in (the real google-cloud-logging client over gRPC; the stand-in runs
  in its own process too, and must hold every entry at the end), each against a bare httpx loop that fetches and parses the same pages (the
  same day windows, each widened by the exporter's `day_margin`, so ~3x the pages of the
  backlog itself, limit 1,000; entries/s counts each entry once: the export's look-back is the backlog's span, so it walks no
  extra empty days), measured in the same run; best of `ROUNDS` each. The Instantly
  client's rate limiter is set out of the way: this measures the exporter's own cost, not the
  configured share of Instantly's limit (at the default 20 requests/s x 1,000 entries per page,
  the limiter caps any exporter at 20,000 entries/s);
- peak Python memory (tracemalloc) of a complete export of 10,000 and of 100,000 entries at that
  density: it must not grow with the backlog, since one day (at most `max_buffered` entries) is
  held at a time.

Run: `python -m benchmarks audit` (or `make bench`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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

BACKLOG = 100_000
SMALL = 10_000
STEP = timedelta(seconds=30)
ROUNDS = 2
# Days the backlog spans, plus margin: the exporter's look-back and the bare loop's windows.
DAYS = int(STEP * BACKLOG / timedelta(days=1)) + 2
# The deployed options (checkpoint at most once a second), with a look-back covering the backlog
# and no more: the exporter walks exactly the day windows the bare loop fetches. (A longer
# look-back adds requests for empty days that the bare loop does not make; with the sandbox's
# random order each of those scans the whole log, so a 60-day look-back alone cost the export
# ~25 extra requests, about a third of its time, and made the comparison unfair.)
OPTIONS = ExportOptions(lookback=timedelta(days=DAYS))


@dataclass
class SandboxProcess:
    base_url: str
    control_url: str
    key: str
    process: subprocess.Popen[str]

    def seed(self, n: int) -> None:
        start = datetime.now(UTC) - STEP * n
        body = {
            "n": n,
            "start": start.isoformat(),
            "step_s": STEP.total_seconds(),
            "activity_types": [1, 9, 11, 37, 38, 20, 26, 30, 34],
        }
        httpx.post(f"{self.control_url}/audit-logs/seed", json=body, timeout=120).raise_for_status()
        httpx.put(
            f"{self.control_url}/listing-order", json={"order": "random"}, timeout=30
        ).raise_for_status()


@contextlib.contextmanager
def _sandbox(n: int) -> Iterator[SandboxProcess]:
    command = [sys.executable, "-m", "instantly_guard.cli", "sandbox", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--seed", "empty", "--listing-order", "random"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        sb = SandboxProcess(
            info["base_url"], info["control_url"], info["keys"]["admin"]["key"], process
        )
        sb.seed(n)
        yield sb
    finally:
        process.terminate()
        process.wait(30)


def _windows(days: int) -> list[tuple[date, date | None]]:
    """The exporter's queries: each UTC day widened by `day_margin` on both sides."""
    today = datetime.now(UTC).date()
    margin = timedelta(days=OPTIONS.day_margin)
    windows: list[tuple[date, date | None]] = [
        (today - timedelta(days=d) - margin, today - timedelta(days=d) + margin)
        for d in range(days, 0, -1)
    ]
    return [*windows, (today - margin, None)]


def bare_fetch(
    sb: SandboxProcess, windows: Sequence[tuple[date, date | None]]
) -> tuple[int, float]:
    """Fetch and parse every page of every window with httpx alone: (entries, seconds)."""
    headers = {"Authorization": f"Bearer {sb.key}", "User-Agent": "instantly-guard-bench"}
    count = 0
    started = time.perf_counter()
    with httpx.Client(base_url=sb.base_url, headers=headers, timeout=60) as http:
        for start, end in windows:
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 1000, "start_date": start.isoformat()}
                if end is not None:
                    params["end_date"] = end.isoformat()
                if cursor:
                    params["starting_after"] = cursor
                body = http.get("/audit-logs", params=params).raise_for_status().json()
                items = body["items"]
                if not items:
                    break
                count += len(items)
                cursor = body.get("next_starting_after")
                if not cursor:
                    break
    return count, time.perf_counter() - started


def _export(sb: SandboxProcess, sink: Any, store: Any, expected: int) -> tuple[Summary, float]:
    limiter = RateLimiter(1_000_000, 60_000_000)
    with InstantlyClient(
        StaticKey(sb.key), sb.base_url, rate_limiter=limiter, timeout=60
    ) as client:
        # As deployed: the next day window is read ahead while the current one is written.
        exporter = Exporter(ReadAheadSource(ClientPageSource(client)), sink, store, OPTIONS)
        started = time.perf_counter()
        summary = exporter.run()
        elapsed = time.perf_counter() - started
    if summary.error is not None or summary.exported != expected:
        raise RuntimeError(f"export incomplete: {summary.to_json()}")
    return summary, elapsed


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
    sandbox: the server's work (decoding and storing 100,000 entries) is Cloud Logging's, not the
    exporter's, and must not compete with it for this process's GIL. On exit, checks that the
    stand-in holds `expected` distinct entries."""
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


def _throughput() -> list[Row]:
    from instantly_guard.audit.sinks.gcp import CloudLoggingSink

    n = BACKLOG
    windows = _windows(DAYS)  # the exporter's windows: today - look-back .. today (open-ended)
    bare: list[float] = []
    jsonl: list[float] = []
    cloud: list[float] = []
    pages = 0
    with _sandbox(n) as sb:
        for _ in range(ROUNDS):
            fetched, seconds = bare_fetch(sb, windows)
            if fetched < n:  # each entry is listed by up to 1 + 2 x day_margin windows
                raise RuntimeError(f"bare fetch saw {fetched} entries, fewer than {n}")
            bare.append(n / seconds)
            with tempfile.TemporaryDirectory() as tmp:
                sink = JsonlSink(Path(tmp) / "audit.jsonl")
                store = LocalCheckpointStore(Path(tmp) / "checkpoint.json")
                summary, seconds = _export(sb, sink, store, n)
                pages = summary.pages
                jsonl.append(n / seconds)
            with _logging_standin(n) as client:
                logging_sink = CloudLoggingSink(client, project="bench", log_id="instantly-audit")
                _, seconds = _export(sb, logging_sink, MemoryCheckpointStore(), n)
                cloud.append(n / seconds)
    best_bare = max(bare)
    note = f"{n:,} entries, {pages} pages, random order; baseline = bare httpx fetch, same pages"
    return [
        Row("bare httpx fetch of the same pages", best_bare, "entries/s", None, "baseline"),
        Row("export to JSONL sink", max(jsonl), "entries/s", best_bare, note),
        Row(
            "export to Cloud Logging stand-in",
            max(cloud),
            "entries/s",
            best_bare,
            note + "; gRPC stand-in in its own process",
        ),
    ]


def _peak_memory(n: int) -> float:
    """Peak traced memory (MiB) of one complete export of `n` entries to the JSONL sink."""
    with _sandbox(n) as sb, tempfile.TemporaryDirectory() as tmp:
        sink = JsonlSink(Path(tmp) / "audit.jsonl")
        store = LocalCheckpointStore(Path(tmp) / "checkpoint.json")
        gc.collect()
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            _export(sb, sink, store, n)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return (peak - baseline) / (1024 * 1024)


def run() -> list[Row]:
    rows = _throughput()
    small = _peak_memory(SMALL)
    large = _peak_memory(BACKLOG)
    per_day = round(timedelta(days=1) / STEP)
    rows += [
        Row(
            f"peak memory, {SMALL:,} entries",
            small,
            "MiB",
            None,
            f"tracemalloc; ~{per_day:,} entries/day",
        ),
        Row(
            f"peak memory, {BACKLOG:,} entries",
            large,
            "MiB",
            small,
            "ratio ~1: flat, one day is held at a time",
        ),
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
