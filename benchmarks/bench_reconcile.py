"""Reconciliation: the cost of one run against the cost of just reading the same delivery log.

The sandbox (in this process) holds `RECORDS` delivery records of one webhook over the last day,
one in `FAILED_EVERY` failed (each a distinct event, so each is republished to the local
outbox). Measured in the same run, best of `ROUNDS`:

- records/s of a first reconcile run (read every page, index, republish the failures, write the
  file checkpoint), against a bare httpx loop fetching and parsing the same pages
  (`limit=100`, `search=<url>`, `from=<yesterday - 1 day>`): the ratio is what reconciling adds
  to reading;
- records/s of a second run, which finds nothing new (the steady state every 10 minutes).

The sandbox shares the CPU with what is measured, so both sides carry its cost; the Instantly
client's rate limiter is set out of the way.

Run: `python -m benchmarks reconcile` (or `make bench`).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.common import Row
from instantly_guard.reconcile.service import build_service
from instantly_sandbox import Sandbox
from instantly_sandbox.delivery import build_event_payload
from instantly_sandbox.state import WebhookEventRecord, WebhookRecord

RECORDS = 5_000
FAILED_EVERY = 10
ROUNDS = 2
URL = "https://hooks.example/instantly"


def _seed(sb: Sandbox) -> None:
    ws = sb.state
    start = datetime.now(UTC) - timedelta(hours=20)
    with ws.lock:
        hook_id, stamp = ws.new_id(start)
        ws.webhooks[hook_id] = WebhookRecord(hook_id, ws.id, URL, "all_events", stamp)
        for i in range(RECORDS):
            at = start + timedelta(seconds=10 * i)
            record_id, created = ws.new_id(at)
            payload = build_event_payload(
                "reply_received",
                workspace_id=ws.id,
                campaign_id=hook_id,
                timestamp=at,
                lead_email=f"lead{i}@prospect.example",
            )
            ok = i % FAILED_EVERY != 0
            ws.webhook_events[record_id] = WebhookEventRecord(
                record_id, created, ws.id, hook_id, URL, payload, ok,
                200 if ok else None, None if ok else "timeout", 12,
            )  # fmt: skip


def _bare(sb: Sandbox, key: str) -> float:
    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    started = time.perf_counter()
    seen = 0
    with httpx.Client(base_url=sb.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
        cursor = None
        while True:
            params = {"limit": 100, "search": URL, "from": since}
            if cursor:
                params["starting_after"] = cursor
            body = client.get("/webhook-events", params=params).json()
            seen += len(body["items"])
            cursor = body.get("next_starting_after")
            if not body["items"] or not cursor:
                break
    assert seen == RECORDS
    return time.perf_counter() - started


def _reconcile(sb: Sandbox, key: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "GUARD_BACKEND": "local",
            "GUARD_STATE_DIR": str(Path(tmp)),
            "INSTANTLY_API_BASE": sb.base_url,
            "INSTANTLY_API_KEY": key,
            "RECONCILE_WEBHOOK_URLS": URL,
            "INSTANTLY_RATE_PER_SECOND": "50",
            "INSTANTLY_RATE_PER_MINUTE": "6000",
        }
        service = build_service(env)
        try:
            started = time.perf_counter()
            first = service.run("bench@1")
            middle = time.perf_counter()
            second = service.run("bench@2")
            ended = time.perf_counter()
        finally:
            service.close()
    assert first.republished == RECORDS // FAILED_EVERY, first.to_json()
    assert second.republished == 0
    return middle - started, ended - middle


def run() -> list[Row]:
    with Sandbox(seed="empty", record_responses=False) as sb:
        _seed(sb)
        key = sb.add_key("bench", ["webhook_events:read"]).key
        bare = min(_bare(sb, key) for _ in range(ROUNDS))
        runs = [_reconcile(sb, key) for _ in range(ROUNDS)]
    first = min(r[0] for r in runs)
    steady = min(r[1] for r in runs)
    note = f"{RECORDS:,} records, 1 in {FAILED_EVERY} failed; baseline: bare page loop"
    return [
        Row("reconcile first run", RECORDS / first, "records/s", RECORDS / bare, note),
        Row("reconcile steady run", RECORDS / steady, "records/s", RECORDS / bare, note),
    ]
