"""One key rotation end to end against the sandbox: latency, and the calls it makes.

A rotation here is one SECRET_ROTATE handled by `Rotator.handle`: claim, list leftovers, create,
test, store, finish, and (grace 0) revoke the previous key and disable its version. Measured
with the local store and with Secret Manager through the real client and the gRPC stand-in.
Baseline: the same Instantly requests (list keys, create, test read, delete) sent with a bare
httpx client, i.e. what the protocol costs on top of the HTTP calls it cannot avoid.

Reproduce: `python -m benchmarks rotation` (or `make bench`).
"""

from __future__ import annotations

import ssl
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tests.standins.secret_manager import SecretManagerStandIn

from benchmarks.common import Row, percentile
from instantly_guard.instantly import InstantlyClient
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.instantly.ratelimit import RateLimiter
from instantly_guard.rotation.engine import Rotator, set_current
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import Kind, ManagedConfig
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretStore
from instantly_guard.secrets.gcp import GcpSecretStore
from instantly_guard.secrets.local import LocalSecretStore
from instantly_sandbox import Sandbox

ROTATIONS = 30
ADMIN = "bench-admin"
MANAGED = "bench-audit-key"


class CountingStore:
    """Counts the calls made to a SecretStore (the local one has no server to count them)."""

    def __init__(self, inner: SecretStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def _clients(base_url: str) -> Callable[[KeyProvider], Any]:
    limiter = RateLimiter(100.0, 6000)
    tls = ssl.create_default_context()

    def build(provider: KeyProvider) -> InstantlyClient:
        transport = httpx.HTTPTransport(verify=tls)
        return InstantlyClient(provider, base_url, rate_limiter=limiter, transport=transport)

    return build


def _prepare(store: Any, sb: Sandbox) -> None:
    admin = sb.add_key("bench admin", ["api_keys:create", "api_keys:read", "api_keys:delete"])
    labels, notes = ManagedConfig.declare(
        kind=Kind.API_KEY, scopes=("api_keys:create", "api_keys:read", "api_keys:delete")
    )
    store.create_secret(ADMIN, labels=labels, annotations=notes)
    set_current(store, ADMIN, Secret(admin.key), key_id=admin.id)
    labels, notes = ManagedConfig.declare(
        kind=Kind.API_KEY, scopes=("audit_logs:read",), admin_secret=ADMIN, grace="0s"
    )
    store.create_secret(MANAGED, labels=labels, annotations=notes)


def _events(n: int) -> Iterator[RotateRequest]:
    start = datetime.now(UTC)
    for i in range(n):
        yield RotateRequest(MANAGED, "bench", start + timedelta(seconds=i), str(i))


def _measure(
    sb: Sandbox, store: Any, store_calls: Callable[[], Mapping[str, int]]
) -> tuple[list[float], float, float, Counter[str], Counter[str]]:
    _prepare(store, sb)
    rotator = Rotator(store, _clients(sb.base_url))
    events = list(_events(ROTATIONS + 1))
    rotator.handle(events[0])  # provisioning, and warm-up
    api_before = Counter(sb.calls)
    sm_before = Counter(store_calls())
    samples = []
    for event in events[1:]:
        started = time.perf_counter()
        rotator.handle(event)
        samples.append((time.perf_counter() - started) * 1000)
    api = Counter(sb.calls)
    api.subtract(api_before)
    sm = Counter(store_calls())
    sm.subtract(sm_before)
    return (
        samples,
        sum(api.values()) / ROTATIONS,
        sum(sm.values()) / ROTATIONS,
        +api,
        +sm,
    )


def _bare_http(sb: Sandbox, n: int) -> float:
    """The Instantly requests of one rotation, with a bare httpx client: p50 in ms."""
    admin = sb.add_key("bare admin", ["api_keys:all"])
    samples = []
    with httpx.Client(base_url=sb.base_url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {admin.key}"}
        previous: str | None = None
        for i in range(n):
            started = time.perf_counter()
            http.get("/api-keys", params={"limit": 100}, headers=auth).raise_for_status()
            created = http.post(
                "/api-keys", json={"name": f"bare/{i}", "scopes": ["audit_logs:read"]}, headers=auth
            ).json()
            probe = {"Authorization": f"Bearer {created['key']}"}
            http.get("/audit-logs", params={"limit": 1}, headers=probe).raise_for_status()
            if previous:
                http.delete(f"/api-keys/{previous}", headers=auth).raise_for_status()
            previous = created["id"]
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _breakdown(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {count / ROTATIONS:g}" for name, count in sorted(counts.items()))


def run() -> list[Row]:
    rows: list[Row] = []
    with Sandbox(seed="empty", record_responses=False) as sb:
        baseline = _bare_http(sb, ROTATIONS)

        with tempfile.TemporaryDirectory() as tmp:
            local = CountingStore(LocalSecretStore(Path(tmp) / "secrets"))
            samples, api, calls, api_mix, sm_mix = _measure(sb, local, lambda: local.calls)
        rows += [
            Row(
                "rotation p50, local store",
                percentile(samples, 50),
                "ms",
                baseline,
                f"create+test+store+finish+revoke; baseline: bare httpx, same {ROTATIONS} rotations",
            ),
            Row("rotation p95, local store", percentile(samples, 95), "ms", None, ""),
            Row("Instantly calls per rotation", api, "calls", None, _breakdown(api_mix)),
            Row("store calls per rotation, local", calls, "calls", None, _breakdown(sm_mix)),
        ]

    with Sandbox(seed="empty", record_responses=False) as sb, SecretManagerStandIn() as standin:
        client = standin.client()
        gcp = GcpSecretStore("bench", client=client)
        try:
            samples, api, calls, api_mix, sm_mix = _measure(sb, gcp, lambda: standin.calls)
        finally:
            # Closed before the stand-in stops: otherwise gRPC logs the server's GOAWAY.
            client.transport.close()
        rows += [
            Row(
                "rotation p50, Secret Manager (stand-in)",
                percentile(samples, 50),
                "ms",
                baseline,
                "real client over gRPC to the in-process stand-in",
            ),
            Row("rotation p95, Secret Manager (stand-in)", percentile(samples, 95), "ms", None, ""),
            Row("Secret Manager calls per rotation", calls, "calls", None, _breakdown(sm_mix)),
        ]
    return rows
