"""Inventory: requests and peak memory of a run, against a bare paged read of the same lists.

The sandbox runs in its own process (seeded there with `members` members and `blocked`
block-list entries, plus the empty seed's keys), so neither its CPU nor its memory is counted.
Requests are counted at the sandbox (`GET /_sandbox/calls`, every operation).

- baseline: a bare paged read of the same lists with the same client (`list_workspace_members`,
  `list_api_keys`, `list_webhooks`, `list_block_list_entries`, 100 per page, and
  `GET /workspaces/current`), every item dropped as it arrives;
- measured: a steady inventory run (a snapshot exists; one member promoted and one block-list
  entry removed since), to the JSONL sink and the file store, from reading the snapshot to
  storing the new one.

Peak memory is Python's (tracemalloc), above what was allocated before the run. Sizes: 100
members with 1,000 block-list entries, and 10,000 members with 100,000 entries.
Run: `python -m benchmarks inventory` (or `make bench`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Row

SIZES = ((100, 1_000), (10_000, 100_000))

_SANDBOX = """
import json, sys
from datetime import UTC, datetime, timedelta
from instantly_sandbox import Sandbox
from instantly_guard.scopes import PROFILES
members, blocked = int(sys.argv[1]), int(sys.argv[2])
sb = Sandbox(seed="empty").start()
ws = sb.state
at = datetime(2026, 1, 1, tzinfo=UTC)
for n in range(members):
    ws.add_member(f"member{n}@acme.example", "editor" if n % 10 else "view", at=at + timedelta(seconds=n))
for n in range(blocked):
    value = f"blocked{n}.example" if n % 3 else f"person{n}@blocked.example"
    ws.add_block_list_entry(value, at=at + timedelta(seconds=n))
reader = sb.add_key("inventory", PROFILES["posture_check"].scope_strings)
print(json.dumps({"base_url": sb.base_url, "control_url": sb.control_url,
                  "key": reader.key, "admin": sb.keys["admin"].key}), flush=True)
sys.stdin.read()
sb.stop()
"""


@dataclass
class SandboxProcess:
    base_url: str
    control_url: str
    key: str
    admin: str

    def calls(self) -> int:
        response = httpx.get(f"{self.control_url}/calls", timeout=60)
        counts: dict[str, int] = response.raise_for_status().json()["calls"]
        return sum(counts.values())

    def admin_call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.admin}"}
        response = httpx.request(method, self.base_url + path, headers=headers, timeout=60, **kw)
        return response.raise_for_status().json()


@contextlib.contextmanager
def _sandbox(members: int, blocked: int) -> Iterator[SandboxProcess]:
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _SANDBOX, str(members), str(blocked)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        yield SandboxProcess(info["base_url"], info["control_url"], info["key"], info["admin"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(60)


def _client(sb: SandboxProcess) -> Any:
    from instantly_guard.instantly import InstantlyClient, StaticKey
    from instantly_guard.instantly.ratelimit import RateLimiter
    from instantly_guard.secret import Secret

    # The limiter out of the way: this measures the inventory's own requests and memory.
    return InstantlyClient(
        StaticKey(Secret(sb.key)), sb.base_url, rate_limiter=RateLimiter(1e6, 1e9), timeout=60
    )


def _bare_read(sb: SandboxProcess) -> None:
    with _client(sb) as client:
        for listing in (
            client.list_workspace_members,
            client.list_api_keys,
            client.list_webhooks,
            client.list_block_list_entries,
        ):
            for _ in listing(limit=100):
                pass
        client.get_current_workspace()


def _measure(sb: SandboxProcess, work: Callable[[], object]) -> tuple[int, float]:
    """(requests, peak MiB) of `work`."""
    gc.collect()
    before = sb.calls()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sb.calls() - before - 1, (peak - start) / (1024 * 1024)  # less the first calls read


def _size(members: int, blocked: int) -> list[Row]:
    from instantly_guard.inventory.run import ClientReader, Inventory, Outcome
    from instantly_guard.inventory.service import local_sink
    from instantly_guard.inventory.stores import LocalSnapshotStore

    with _sandbox(members, blocked) as sb, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        store = LocalSnapshotStore(state / "inventory" / "snapshot.bin")
        with _client(sb) as client:
            first = Inventory(ClientReader(client), local_sink(state), store).run()
        if first.outcome != Outcome.BASELINE:
            raise RuntimeError(f"baseline run: {first.to_json()}")
        member = sb.admin_call("GET", "/workspace-members", params={"limit": 1})["items"][0]
        sb.admin_call("PATCH", f"/workspace-members/{member['id']}", json={"role": "admin"})
        entry = sb.admin_call("GET", "/block-lists-entries", params={"limit": 1})["items"][0]
        sb.admin_call("DELETE", f"/block-lists-entries/{entry['id']}")

        bare_requests, bare_peak = _measure(sb, lambda: _bare_read(sb))
        reports: list[Any] = []

        def steady() -> None:
            with _client(sb) as client:
                reports.append(Inventory(ClientReader(client), local_sink(state), store).run())

        requests, peak = _measure(sb, steady)
        (report,) = reports
        if report.outcome != Outcome.CHANGED or report.written != 2:
            raise RuntimeError(f"steady run: {report.to_json()}")
    label = f"{members:,} members, {blocked:,} block-list entries"
    return [
        Row(
            f"requests, steady run ({label})",
            requests,
            "requests",
            bare_requests,
            "vs a bare paged read of the same lists; goal ratio 1",
        ),
        Row(
            f"peak memory, steady run ({label})",
            peak,
            "MiB",
            bare_peak,
            f"tracemalloc, vs the bare read; snapshot {report.snapshot_bytes:,} bytes gzip'd",
        ),
    ]


def run() -> list[Row]:
    rows: list[Row] = []
    for members, blocked in SIZES:
        rows.extend(_size(members, blocked))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
