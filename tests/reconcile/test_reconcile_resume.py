"""Resuming a webhook Instantly disabled: only once the receiver answers the probe, logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from instantly_guard.reconcile.resume import probe_receiver
from instantly_guard.reconcile.service import build_service

from .reconcile_support import ReceiverServer, add_webhook, deliver, reconcile_env


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


def test_the_probe_is_healthy_only_on_the_receivers_405(receiver: ReceiverServer, tmp_path) -> None:
    assert probe_receiver(receiver.url).healthy
    unconfigured = ReceiverServer(tmp_path / "other", INSTANTLY_WEBHOOK_SECRET="").start()
    try:
        result = probe_receiver(unconfigured.url)
        assert (result.healthy, result.detail) == (False, "HTTP 503")
    finally:
        unconfigured.close()
    receiver.stop()
    assert not probe_receiver(receiver.url).healthy
    other = httpx.MockTransport(lambda request: httpx.Response(404))
    assert not probe_receiver("http://x.example/", transport=other).healthy


def test_the_probe_sends_no_credentials() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(405, headers={"Allow": "POST"})

    assert probe_receiver("https://hooks.example/", transport=httpx.MockTransport(answer)).healthy
    assert seen[0].method == "GET"
    assert not {"authorization", "x-webhook-secret"} & {k.lower() for k in seen[0].headers}


def _disabled_by_outage(sandbox_factory, receiver: ReceiverServer):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty", webhook_failure_limit=3)
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    missed = deliver(sb, hook, 3)  # the third failure switches the webhook off (audit 20)
    assert sb.state.webhooks[hook].status == -1
    return sb, hook, missed


def test_a_disabled_webhook_is_resumed_once_the_receiver_is_healthy(
    sandbox_factory, receiver: ReceiverServer, caplog
) -> None:
    sb, hook, _ = _disabled_by_outage(sandbox_factory, receiver)
    env = reconcile_env(sb, receiver.state_dir, receiver.url, RECONCILE_RESUME="true")
    env["INSTANTLY_API_KEY"] = sb.add_key("resumer", ["webhook_events:read", "webhooks:update"]).key
    service = build_service(env)
    try:
        with caplog.at_level(logging.WARNING, logger="instantly_guard.reconcile"):
            down = service.run("job@1")
        assert (down.resumed, down.resume_skipped) == (0, 1)
        assert sb.state.webhooks[hook].status == -1
        assert "not resumed" in caplog.text

        receiver.start()
        up = service.run("job@2")
    finally:
        service.close()

    assert down.republished == 3  # republished into the outbox even while the receiver is down
    assert (up.resumed, up.resume_skipped) == (1, 0)
    assert sb.state.webhooks[hook].status == 1
    assert [e.activity_type for e in sb.state.audit_logs.entries()][-1] == 21
    assert "resumed" in caplog.text
    deliver(sb, hook, 1, lead="resumed")  # deliveries flow again
    assert len(receiver.outbox_ids()) == 4


def test_resume_is_off_by_default_and_needs_no_webhooks_scope(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb, hook, _ = _disabled_by_outage(sandbox_factory, receiver)
    receiver.start()
    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.outcome, report.republished, report.resumed) == ("complete", 3, 0)
    assert sb.state.webhooks[hook].status == -1


def test_resume_without_the_webhooks_update_scope_fails_with_500_naming_it(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb, _, _ = _disabled_by_outage(sandbox_factory, receiver)
    receiver.start()
    env = reconcile_env(sb, receiver.state_dir, receiver.url, RECONCILE_RESUME="true")
    service = build_service(env, client_options={"sleep": lambda _s: None})
    try:
        response = service.handle("POST", {})
    finally:
        service.close()

    assert response.status == 500
    assert response.body["error"]["kind"] == "missing_scope"
    assert "webhooks:update" in response.body["error"]["message"]
    assert response.body["republished"] == 3  # the events were published before the resume step
