"""What a user sees under real latency: every request through a delaying proxy the benchmark
starts itself (`benchmarks.proxy`: 150 ms added per request, answers capped at 20 MB/s).

- check: a workspace of 1,000 keys, 1,000 members and 1,000 block-list entries. Measured: the
  check's collection (sections read concurrently); baseline: the same section reads one after
  another, through the same client and proxy.

Reproduce: `python -m benchmarks latency` (or `make bench`).
"""

from __future__ import annotations

import time
from datetime import timedelta

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


def run() -> list[Row]:
    return _check_rows()
