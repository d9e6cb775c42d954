"""Cost per API key of the two flows that list every key: the check and a rotation.

Each case runs in its own process (so its peak resident memory is its own): a sandbox holding
N keys, then `run_check` (every section, workspace only) or one `Rotator.handle` (which lists
the keys to find leftovers). CPU is the whole process's (`time.process_time`: the check reads
its sections in threads), so the sandbox serving the listing counts too; it grows linearly. The 1,000-key case is compared with the 100-key one: CPU per
key (goal: within 2x) and peak RSS (goal: within 1.5x). Then redaction: the cost of masking one
log line with 10 and with 2,000 registered values (goal: independent of the count).

Reproduce: `python -m benchmarks keys` (or `make bench`).
"""

from __future__ import annotations

import json
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Row

SIZES = (100, 1000)
_SCOPES = ["api_keys:read"]


def _check(n: int) -> tuple[float, int]:
    from instantly_guard.check.collect import REQUIRED_SCOPES
    from instantly_guard.check.engine import run_check
    from instantly_guard.check.policy import Policy
    from instantly_guard.instantly import InstantlyClient
    from instantly_guard.instantly.keys import StaticKey
    from instantly_guard.instantly.ratelimit import RateLimiter
    from instantly_sandbox import Sandbox

    with Sandbox(seed="empty", record_responses=False) as sb:
        for i in range(n):
            sb.add_key(f"bench key {i}", _SCOPES)
        reader = sb.add_key("bench check", REQUIRED_SCOPES)
        limiter = RateLimiter(1000.0, 60_000)
        with InstantlyClient(StaticKey(reader.key), sb.base_url, rate_limiter=limiter) as client:
            started = time.process_time()
            run_check(client, Policy())
            return time.process_time() - started, len(sb.state.api_keys)


def _rotation(n: int) -> tuple[float, int]:
    import tempfile
    from pathlib import Path

    from benchmarks.bench_rotation import _clients, _events, _prepare
    from instantly_guard.rotation.engine import Rotator
    from instantly_guard.secrets.local import LocalSecretStore
    from instantly_sandbox import Sandbox

    with Sandbox(seed="empty", record_responses=False) as sb, tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            sb.add_key(f"bench key {i}", _SCOPES)
        store = LocalSecretStore(Path(tmp) / "secrets")
        _prepare(store, sb)
        rotator = Rotator(store, _clients(sb.base_url))
        first, second = list(_events(2))
        rotator.handle(first)  # provisioning
        started = time.process_time()
        rotator.handle(second)
        return time.process_time() - started, len(sb.state.api_keys)


def _peak_rss_mib() -> float:
    """This process's peak resident memory. Not `ru_maxrss`: Linux keeps that across exec, so a
    child of a large benchmark process would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, n: int) -> None:
    cpu, keys = (_check if kind == "check" else _rotation)(n)
    print(json.dumps({"cpu_s": cpu, "keys": keys, "rss_mib": _peak_rss_mib()}))


def _measure(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_keys", kind, str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _redaction_per_line() -> tuple[float, float, float]:
    """µs to redact one log line (and test it clean) with 10, 100, then 2,000 values (up to 16
    a substring test of each answers; above, the gram index): the fastest of
    7 rounds (the two cannot be interleaved, values only accumulate, and the fastest round is
    the one a loaded machine disturbed least)."""
    from instantly_guard import redaction

    registered: list[str] = []

    line = json.dumps(
        {
            "severity": "INFO",
            "message": "listed api keys",
            "fields": {"count": 100, "next": "019ffad2-9b83-7eb2-a5c2-000000000001"},
            "operation": "GET /api-keys",
        }
    )

    def per_line() -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(2000):
                redaction.redact(line)
                redaction.json_is_clean(line)
            samples.append((time.perf_counter() - started) / 2000 * 1e6)
        return min(samples)

    costs = []
    for count in (10, 100, 2000):
        while len(registered) < count:
            value = secrets.token_urlsafe(32)
            redaction.register(value)
            registered.append(value)
        costs.append(per_line())
    return costs[0], costs[1], costs[2]


def run() -> list[Row]:
    rows: list[Row] = []
    for kind, label in (("check", "check"), ("rotation", "rotation")):
        small, large = (_measure(kind, n) for n in SIZES)
        per_small = small["cpu_s"] / small["keys"] * 1e6
        per_large = large["cpu_s"] / large["keys"] * 1e6
        rows += [
            Row(f"{label} CPU per key, {SIZES[0]:,} keys", per_small, "µs/key", None, "baseline"),
            Row(
                f"{label} CPU per key, {SIZES[1]:,} keys",
                per_large,
                "µs/key",
                per_small,
                f"goal <= 2; process CPU (sandbox included); one process per case ({label})",
            ),
            Row(f"{label} peak RSS, {SIZES[0]:,} keys", small["rss_mib"], "MiB", None, "baseline"),
            Row(
                f"{label} peak RSS, {SIZES[1]:,} keys",
                large["rss_mib"],
                "MiB",
                small["rss_mib"],
                "goal <= 1.5; whole process, sandbox included",
            ),
        ]
    few, hundred, many = _redaction_per_line()
    note = "redact + json_is_clean of a 150-character JSON line; fastest of 7 rounds of 2,000"
    rows += [
        Row("redact one log line, 10 values", few, "µs", None, "substring test per value"),
        Row("redact one log line, 100 values", hundred, "µs", few, f"gram index; {note}"),
        Row(
            "redact one log line, 2,000 values",
            many,
            "µs",
            hundred,
            f"goal ~1 (against 100 values: both on the index); {note}",
        ),
    ]
    return rows


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
