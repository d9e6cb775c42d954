"""The check reads its workspace sections at the same time, through the one shared limiter."""

from __future__ import annotations

import threading

import httpx
from tests.check.test_check_sandbox import DEMO_POLICY, POSTURE_SCOPES

from instantly_guard.check import run_check
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_sandbox import Sandbox

READS = 6  # keys, webhooks, members, block list, audit log, and the workspace's name


class OverlapTransport(httpx.BaseTransport):
    """Real HTTP to the sandbox, holding the first request to each path until every read has
    sent one (or a few seconds pass): reads made one after another can never overlap here."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Condition()
        self._paths: set[str] = set()
        self._in_flight = 0
        self.most_in_flight = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
            self._paths.add(request.url.path)
            self._lock.notify_all()
            self._lock.wait_for(lambda: len(self._paths) >= READS, timeout=10)
        try:
            response = self._inner.handle_request(request)
            response.read()
            return response
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        self._inner.close()


def test_the_sections_are_read_concurrently_and_all_arrive() -> None:
    with Sandbox(seed="demo") as sandbox:
        reader = sandbox.add_key("posture-check", POSTURE_SCOPES)
        transport = OverlapTransport()
        client = InstantlyClient(
            StaticKey(reader.key),
            sandbox.base_url,
            rate_limiter=RateLimiter(1000, 60000),
            transport=transport,
        )
        with client:
            report = run_check(client, DEMO_POLICY)
    assert transport.most_in_flight == READS
    assert report.workspace_name is not None
    # Every section arrived: nothing is skipped but the rules that need the managed secrets,
    # which a check without a secret store does not read.
    needs_store = {"keys.leftover", "webhooks.foreign-to-receiver"}
    assert not [f for f in report.findings if f.skipped and f.rule_id not in needs_store]
