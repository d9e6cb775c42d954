"""Reconciliation: cost follows what is new (issue 22), memory bounded by a page.

The sandbox (in this process) holds a delivery log of one webhook with `SMALL` or `LARGE`
records over the last day, one in `FAILED_EVERY` failed (each a distinct event, republished to
the local outbox). Each reconcile run happens in a fresh child process (the function as
deployed: nothing of the sandbox in its memory), which reports its requests, the peak of its
Python allocations (tracemalloc) and its peak resident size (`VmHWM`: `ru_maxrss` would carry
over the forking parent's). Measured in the same run:

- memory: the first run over a LARGE window (catch-up of every record) against one over a
  SMALL window: flat means a ratio near 1 (the goal: within 10%);
- requests: the first run over the LARGE window against over the SMALL one (they grow with
  what is new: a first run reads everything once);
- a caught-up run (nothing new, LARGE window): its requests against the goal ceil(0/100) + 2;
- a run with `NEW` new records on top of the LARGE window: its requests against
  ceil(NEW/100) + 2.

The Instantly client's rate limiter is set out of the way. Run: `python -m benchmarks
reconcile` (or `make bench`).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import Row
from instantly_sandbox import Sandbox
from instantly_sandbox.delivery import build_event_payload
from instantly_sandbox.state import WebhookEventRecord, WebhookRecord

SMALL = 10_000
LARGE = 100_000
NEW = 250
FAILED_EVERY = 100
URL = "https://hooks.example/instantly"


def _seed(sb: Sandbox, hook_id: str, count: int, start: datetime, *, lead: str = "lead") -> None:
    ws = sb.state
    with ws.lock:
        for i in range(count):
            at = start + timedelta(milliseconds=500 * i)
            record_id, created = ws.new_id(at)
            payload = build_event_payload(
                "reply_received",
                workspace_id=ws.id,
                campaign_id=hook_id,
                timestamp=at,
                lead_email=f"{lead}{i}@prospect.example",
            )
            ok = i % FAILED_EVERY != 0
            ws.webhook_events[record_id] = WebhookEventRecord(
                record_id, created, ws.id, hook_id, URL, payload, ok,
                200 if ok else None, None if ok else "timeout", 12,
            )  # fmt: skip


def _hook(sb: Sandbox) -> str:
    ws = sb.state
    with ws.lock:
        hook_id, stamp = ws.new_id(datetime.now(UTC) - timedelta(days=2))
        ws.webhooks[hook_id] = WebhookRecord(hook_id, ws.id, URL, "all_events", stamp)
    return hook_id


def _child(base_url: str, key: str, hook_id: str, state_dir: str, run_key: str) -> dict[str, Any]:
    """One reconcile run in a fresh interpreter: its report, peak allocations and RSS."""
    script = (
        "import json, sys, tracemalloc\n"
        "from instantly_guard.reconcile.service import build_service\n"
        "base, key, hook, state, run = sys.argv[1:6]\n"
        "env = {'GUARD_BACKEND': 'local', 'GUARD_STATE_DIR': state,\n"
        "       'INSTANTLY_API_BASE': base, 'INSTANTLY_API_KEY': key,\n"
        "       'RECONCILE_WEBHOOK_IDS': hook, 'RECONCILE_TIME_BUDGET': '3600s',\n"
        "       'INSTANTLY_RATE_PER_SECOND': '50', 'INSTANTLY_RATE_PER_MINUTE': '6000'}\n"
        "service = build_service(env)\n"
        "tracemalloc.start()\n"
        "report = service.run(run)\n"
        "peak = tracemalloc.get_traced_memory()[1]\n"
        "service.close()\n"
        "rss = next(int(line.split()[1]) * 1024 for line in open('/proc/self/status')\n"
        "           if line.startswith('VmHWM:'))\n"
        "print(json.dumps({**report.to_json(), 'peak': peak, 'rss': rss}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, base_url, key, hook_id, state_dir, run_key],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _window(records: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(first run, caught-up run, run with NEW new records) over a window of `records`."""
    with Sandbox(seed="empty", record_responses=False) as sb, tempfile.TemporaryDirectory() as tmp:
        hook = _hook(sb)
        _seed(sb, hook, records, datetime.now(UTC) - timedelta(hours=20))
        key = sb.add_key("bench", ["webhook_events:read"]).key
        first = _child(sb.base_url, key, hook, tmp, "bench@1")
        caught_up = _child(sb.base_url, key, hook, tmp, "bench@2")
        _seed(sb, hook, NEW, datetime.now(UTC) - timedelta(minutes=5), lead="new")
        busy = _child(sb.base_url, key, hook, tmp, "bench@3")
    assert first["outcome"] == "complete", first
    assert first["republished"] == math.ceil(records / FAILED_EVERY), first
    assert caught_up["checked"] == 0, caught_up
    assert busy["checked"] == NEW, busy
    return first, caught_up, busy


def run() -> list[Row]:
    small_first, _, _ = _window(SMALL)
    large_first, caught_up, busy = _window(LARGE)
    mib = 1024 * 1024
    window = f"{LARGE:,} vs {SMALL:,} records in the window, 1 in {FAILED_EVERY} failed"
    return [
        Row(
            "reconcile first-run memory, 100k vs 10k",
            large_first["peak"] / mib,
            "MiB",
            small_first["peak"] / mib,
            f"{window}; peak Python allocations of the run (tracemalloc)",
        ),
        Row(
            "reconcile first-run peak RSS, 100k vs 10k",
            large_first["rss"] / mib,
            "MiB",
            small_first["rss"] / mib,
            f"{window}; the child process's VmHWM, interpreter and imports included",
        ),
        Row(
            "reconcile first-run requests, 100k vs 10k",
            large_first["requests"],
            "requests",
            small_first["requests"],
            f"{window}; a first run reads everything once",
        ),
        Row(
            "reconcile caught-up run (nothing new)",
            caught_up["requests"],
            "requests",
            2,
            f"{LARGE:,} records in the window; baseline: the goal ceil(0/100) + 2",
        ),
        Row(
            f"reconcile run with {NEW} new",
            busy["requests"],
            "requests",
            math.ceil(NEW / 100) + 2,
            f"{LARGE:,} records in the window; baseline: the goal ceil({NEW}/100) + 2",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
