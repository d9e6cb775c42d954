"""The exporter stays within its `AUDIT_RATE_SHARE` of the workspace limit, measured against a
sandbox that enforces a limit, and backs off on 429 without losing or repeating entries.

The service is built by `build_service` from a dict env, as deployed: the limiter under test is
the one it derives from `AUDIT_RATE_SHARE` (a share of Instantly's 100/s and 6,000/min). The
exporter fetches pages of 1,000 entries, so the many requests come from many day windows
(`AUDIT_LOOKBACK`), each a cheap one-page request: unthrottled, the exporter would send them far
faster than the sandbox allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from instantly_guard.audit.service import AuditExportService, build_service
from instantly_guard.audit.settings import WORKSPACE_PER_SECOND, AuditSettings

from .audit_support import assert_exact, jsonl_ids

LOOKBACK_DAYS = 40
SHARE = 0.1  # of 100/s: 10 requests/s, 600/min
SANDBOX_PER_S = 20  # twice the exporter's rate: the limiter's documented worst 1-s window


class TimedTransport(httpx.BaseTransport):
    """The real HTTP transport, noting when each request leaves (every attempt, 429s too)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.sent: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent.append(time.monotonic())
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def env_for(sb, state: Path, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.keys["admin"].key,
        # Process-wide caps well above the share, so the share is what binds.
        "INSTANTLY_RATE_PER_SECOND": "50",
        "INSTANTLY_RATE_PER_MINUTE": "6000",
        "AUDIT_RATE_SHARE": str(SHARE),
        "AUDIT_LOOKBACK": f"{LOOKBACK_DAYS}d",
    }
    env.update(extra)
    return env


@pytest.fixture
def services() -> Iterator[Any]:
    made: list[AuditExportService] = []

    def make(env: dict[str, str], **kwargs: Any) -> AuditExportService:
        service = build_service(env, **kwargs)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


def seeded(sandbox_factory, days: int, step: timedelta = timedelta(minutes=2)):  # type: ignore[no-untyped-def]
    """An empty workspace with one entry every `step` over the last `days` days: dense enough
    that the export needs dozens of requests (it lists about what is new, not every day)."""
    sandbox = sandbox_factory(seed="empty", listing_order="random")
    sandbox.seed_audit_logs(int(timedelta(days=days) / step), step=step, activity_types=(1, 37, 30))
    return sandbox


@pytest.fixture
def sb(sandbox_factory):  # type: ignore[no-untyped-def]
    # Dense enough for several seconds' worth of requests in one pass.
    return seeded(sandbox_factory, LOOKBACK_DAYS - 1, step=timedelta(minutes=1))


def statuses(sb) -> list[int]:  # type: ignore[no-untyped-def]
    return [r.status for r in sb.responses if r.operation == "GET /audit-logs"]


def test_the_share_maps_to_ten_requests_per_second(sb, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = AuditSettings.from_env(env_for(sb, tmp_path))
    assert settings.rate_per_second == WORKSPACE_PER_SECOND * SHARE == 10
    assert settings.rate_per_minute == 600


def test_an_export_stays_within_its_share_of_a_rate_limited_workspace(  # type: ignore[no-untyped-def]
    sb, tmp_path, services
) -> None:
    sb.set_rate_limit(SANDBOX_PER_S)
    transport = TimedTransport()
    service = services(env_for(sb, tmp_path), client_options={"transport": transport})
    rate = WORKSPACE_PER_SECOND * SHARE  # what the share grants, not what the limiter says

    response = service.handle("POST", {})

    assert response.status == 200, response.body
    assert response.body["stopped_reason"] == "complete"
    assert_exact(jsonl_ids(tmp_path / "audit" / "instantly-audit.jsonl"), sb.state.audit_logs.ids())

    sent = transport.sent
    assert len(sent) >= 3 * SHARE * WORKSPACE_PER_SECOND  # several seconds' worth of requests
    # Every request reached the sandbox and none was refused.
    assert sum(sb.calls.values()) == len(sent)
    seen = statuses(sb)
    assert seen.count(429) == 0, f"the sandbox refused {seen.count(429)} of {len(seen)} requests"
    assert seen == [200] * len(sent)

    # The limiter's documented bound: any 1-s window holds at most a full bucket plus a second
    # of refill (2 x per_second), which is exactly what the sandbox allows.
    burst = rate  # the per-second bucket holds one second's worth
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= burst + rate, f"{busiest} requests within one second"
    # Sustained: requests i..j fit a full bucket plus the refill over their span (one request of
    # slack for scheduling jitter between the limiter and the socket).
    for i, first in enumerate(sent):
        for j in range(i, len(sent)):
            count = j - i + 1
            allowed = burst + rate * (sent[j] - first) + 1
            assert count <= allowed, (
                f"requests {i}..{j}: {count} in {sent[j] - first:.2f} s (allowed {allowed:.1f})"
            )
    # The whole run took at least as long as the rate demands beyond the first bucket.
    assert sent[-1] - sent[0] >= (len(sent) - burst - 1) / rate


def test_an_export_over_a_tighter_limit_backs_off_on_429_and_stays_exact(  # type: ignore[no-untyped-def]
    sandbox_factory, tmp_path, services
) -> None:
    sb = seeded(sandbox_factory, 11)
    # Below the exporter's 10/s (and its 10-request burst): the sandbox must refuse some.
    sb.set_rate_limit(4)
    service = services(env_for(sb, tmp_path, AUDIT_LOOKBACK="12d"))

    response = service.handle("POST", {})

    assert response.status == 200, response.body
    assert response.body["stopped_reason"] == "complete"
    seen = statuses(sb)
    assert seen.count(429) >= 1, "the sandbox never refused: backoff was not exercised"
    assert set(seen) == {200, 429}
    written = jsonl_ids(tmp_path / "audit" / "instantly-audit.jsonl")
    expected = sb.state.audit_logs.ids()
    assert len(expected) > 300
    # Every entry exactly once: no gaps, and no entry written twice (no rewrites at all).
    assert len(written) == len(expected)
    assert_exact(written, expected, max_rewrites=0)
