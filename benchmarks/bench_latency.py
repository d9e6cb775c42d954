"""What a user sees under real latency: every request through a delaying proxy the benchmark
starts itself (`benchmarks.proxy`: 150 ms added per request, answers capped at 20 MB/s).

- check: a workspace of 1,000 keys, 1,000 members and 1,000 block-list entries. Measured: the
  check's collection (sections read concurrently); baseline: the same section reads one after
  another, through the same client and proxy.

- backfill: 80,000 audit entries over 20 days, exported with `instantly-guard export-audit
  --since` (the service's backfill: JSONL sink, default rate share 25 requests/s). Baseline: a
  bare sequential loop over the same listing (httpx, 1,000 per page, cursor after cursor, JSON
  parsed), through the same proxy. Goal: at least 3x faster than the bare loop.

Reproduce: `python -m benchmarks latency` (or `make bench`).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.common import Row
from benchmarks.proxy import DelayingProxy
from instantly_guard.check import collect
from instantly_guard.check.policy import Policy
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_sandbox import Sandbox

WORKSPACE_SIZE = 1000
DELAY_S = 0.150
BYTES_PER_S = 20e6
_PROXY_NOTE = "150 ms added per request, 20 MB/s per answer"


def _check_rows() -> list[Row]:
    with Sandbox(seed="empty", record_responses=False) as sb:
        for i in range(WORKSPACE_SIZE):
            sb.add_key(f"bench key {i}", ["api_keys:read"])
            sb.state.add_member(f"member{i}@example.com", "view")
            sb.state.add_block_list_entry(f"blocked{i}.example.com")
        reader = sb.add_key("bench check", collect.REQUIRED_SCOPES)
        policy = Policy()
        with DelayingProxy(sb.url, delay_s=DELAY_S, bytes_per_s=BYTES_PER_S) as proxy:
            client = InstantlyClient(
                StaticKey(reader.key),
                proxy.url + "/api/v2",
                rate_limiter=RateLimiter(100.0, 6000),
            )
            with client:
                since = sb.state.now() - timedelta(days=policy.audit_window_days)
                started = time.perf_counter()
                collect._keys(client)
                collect._webhooks(client)
                collect._members(client)
                collect._block_list(client)
                collect._audit(client, since)
                client.get_current_workspace()
                sequential = time.perf_counter() - started
                before = proxy.requests

                started = time.perf_counter()
                snapshot = collect.collect_workspace(client, policy)
                concurrent = time.perf_counter() - started
                requests = proxy.requests - before
    assert not snapshot.errors, snapshot.errors
    return [
        Row(
            "check sections, one after another",
            sequential,
            "s",
            None,
            f"baseline; {WORKSPACE_SIZE:,} keys, members, block entries; {_PROXY_NOTE}",
        ),
        Row(
            "check sections, concurrent",
            concurrent,
            "s",
            sequential,
            f"collect_workspace, {requests} requests; same client and proxy",
        ),
    ]


BACKFILL_ENTRIES = 80_000
BACKFILL_DAYS = 20


def _bare_loop(base_url: str, key: str, since: datetime) -> tuple[float, int, int]:
    """Seconds, entries and requests of a sequential listing from `since`'s day."""
    entries = requests = 0
    cursor: str | None = None
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=60) as http:
        while True:
            params: dict[str, str | int] = {"limit": 1000, "start_date": since.date().isoformat()}
            if cursor:
                params["starting_after"] = cursor
            answer = http.get(
                "/audit-logs", params=params, headers={"Authorization": f"Bearer {key}"}
            )
            answer.raise_for_status()
            requests += 1
            body = answer.json()
            entries += len(body["items"])
            cursor = body.get("next_starting_after")
            if not body["items"] or not cursor:
                break
    return time.perf_counter() - started, entries, requests


def _backfill_rows() -> list[Row]:
    from instantly_guard.audit.service import build_service

    with Sandbox(seed="empty", record_responses=False) as sb:
        since = datetime.now(UTC) - timedelta(days=BACKFILL_DAYS)
        sb.seed_audit_logs(
            BACKFILL_ENTRIES, start=since, step=timedelta(days=BACKFILL_DAYS) / BACKFILL_ENTRIES
        )
        key = sb.keys["admin"].key
        with (
            DelayingProxy(sb.url, delay_s=DELAY_S, bytes_per_s=BYTES_PER_S) as proxy,
            tempfile.TemporaryDirectory() as tmp,
        ):
            bare_s, bare_entries, bare_requests = _bare_loop(proxy.url + "/api/v2", key, since)
            env = {
                "GUARD_BACKEND": "local",
                "GUARD_STATE_DIR": str(Path(tmp)),
                "INSTANTLY_API_BASE": proxy.url + "/api/v2",
                "INSTANTLY_API_KEY": key,
                "LOG_LEVEL": "WARNING",
            }
            service = build_service(env)
            before = proxy.requests
            try:
                started = time.perf_counter()
                summary = service.backfill(since.date())
                windowed_s = time.perf_counter() - started
            finally:
                service.close()
            requests = proxy.requests - before
    if summary.exported != BACKFILL_ENTRIES or bare_entries != BACKFILL_ENTRIES:
        raise RuntimeError(f"exported {summary.exported}, bare loop listed {bare_entries}")
    return [
        Row(
            "backfill, bare sequential loop",
            BACKFILL_ENTRIES / bare_s,
            "entries/s",
            None,
            f"baseline; {BACKFILL_ENTRIES:,} entries over {BACKFILL_DAYS} days, "
            f"{bare_requests} requests; {_PROXY_NOTE}",
        ),
        Row(
            "backfill, export-audit --since (day windows)",
            BACKFILL_ENTRIES / windowed_s,
            "entries/s",
            BACKFILL_ENTRIES / bare_s,
            f"goal >= 3; {requests} requests ({requests / bare_requests:.2f}x the bare loop's); "
            "JSONL sink, rate share 25/s",
        ),
    ]


def run() -> list[Row]:
    return _check_rows() + _backfill_rows()
