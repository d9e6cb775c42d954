"""Webhook deliveries to a real local receiver, with the webhook's own headers."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from instantly_sandbox import DeliveryError, Sandbox
from instantly_sandbox.delivery import DELIVERY_USER_AGENT, subscribed_to


def _hook(admin, url: str, event_type: str = "reply_received", headers=None) -> str:
    body = {"target_hook_url": url, "event_type": event_type, "headers": headers}
    return admin.post("/webhooks", json=body).json()["id"]


def test_delivery_posts_json_with_the_custom_headers(sandbox: Sandbox, admin, receiver) -> None:
    hook_id = _hook(admin, receiver.url, headers={"x-webhook-secret": "k" * 32})
    payload = sandbox.build_event_payload("reply_received", webhook_id=hook_id)
    assert sandbox.deliver_webhook_event(hook_id, payload) == 200

    path, headers, body = receiver.requests[0]
    assert path == "/hook"
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered["x-webhook-secret"] == "k" * 32
    assert lowered["content-type"] == "application/json"
    assert lowered["user-agent"] == DELIVERY_USER_AGENT
    assert json.loads(body) == payload


def test_one_header_name_stored_in_two_cases_is_sent_once(
    sandbox: Sandbox, admin, receiver
) -> None:
    """Header names are case-insensitive: a headers object holding `X-Webhook-Secret` and
    `x-webhook-secret` is one header on the wire (the last spelling wins, as in Node's http)."""
    stale, fresh = "stale-" + "a" * 32, "fresh-" + "b" * 32
    headers = {"X-Webhook-Secret": stale, "x-webhook-secret": fresh}
    hook_id = _hook(admin, receiver.url, headers=headers)
    assert sandbox.deliver_webhook_event(hook_id) == 200

    sent = [v for k, v in receiver.header_lines[0] if k.lower() == "x-webhook-secret"]
    assert sent == [fresh]


def test_payload_has_the_documented_fields(sandbox: Sandbox) -> None:
    payload = sandbox.build_event_payload("reply_received")
    for field in ("timestamp", "event_type", "workspace", "campaign_id", "campaign_name"):
        assert payload[field]
    for field in ("lead_email", "email_account", "step", "variant", "is_first", "reply_text"):
        assert field in payload
    assert payload["workspace"] == sandbox.state.id
    assert payload["campaign_id"] in sandbox.state.campaigns
    extra = sandbox.build_event_payload("lead_interested", companyName="Initech")
    assert extra["companyName"] == "Initech"
    assert "reply_text" in extra  # a status set by a reply carries it (tests/webhook/samples)


def test_link_clicks_are_subscribed_and_delivered_under_different_names(sandbox: Sandbox) -> None:
    assert sandbox.build_event_payload("email_link_clicked")["event_type"] == "link_clicked"
    assert subscribed_to("email_link_clicked", "link_clicked")
    assert subscribed_to("all_events", "auto_reply_received")
    assert subscribed_to(None, "Hot lead (custom label)")
    assert not subscribed_to(None, "reply_received")


def test_default_payload_follows_the_webhook_subscription(
    sandbox: Sandbox, admin, receiver
) -> None:
    hook_id = _hook(admin, receiver.url, event_type="email_link_clicked")
    sandbox.deliver_webhook_event(hook_id)
    assert json.loads(receiver.requests[0][2])["event_type"] == "link_clicked"


def test_deliveries_are_listed_as_webhook_events(sandbox: Sandbox, admin, receiver) -> None:
    hook_id = _hook(admin, receiver.url)
    receiver.status = 500
    assert sandbox.deliver_webhook_event(hook_id) == 500
    events = admin.get("/webhook-events", params={"success": "false"}).json()["items"]
    assert [(e["webhook_url"], e["status_code"]) for e in events] == [(receiver.url, 500)]


def test_repeated_failures_disable_the_webhook_when_configured(
    sandbox_factory, client_for, receiver
) -> None:
    sb = sandbox_factory(seed="demo", webhook_failure_limit=2)
    hook_id = _hook(client_for(sb), receiver.url)
    receiver.status = 503
    sb.deliver_webhook_event(hook_id)
    assert not sb.state.webhooks[hook_id].disabled
    sb.deliver_webhook_event(hook_id)
    assert sb.state.webhooks[hook_id].status == -1
    assert sb.state.audit_logs.entries()[-1].activity_type == 20
    with pytest.raises(DeliveryError, match="disabled"):
        sb.deliver_webhook_event(hook_id)


def test_unreachable_target_raises_and_is_recorded(sandbox: Sandbox, admin) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook_id = _hook(admin, f"http://127.0.0.1:{port}/hook")
    with pytest.raises(DeliveryError):
        sandbox.deliver_webhook_event(hook_id, timeout=1.0)
    event = next(iter(sandbox.state.webhook_events.values()))
    assert event.success is False
    assert event.status_code is None


def test_dispatch_reaches_every_subscribed_active_webhook(
    sandbox: Sandbox, admin, receiver
) -> None:
    for hook in list(sandbox.state.webhooks.values()):
        admin.delete(f"/webhooks/{hook.id}")
    wanted = _hook(admin, receiver.url, event_type="reply_received")
    everything = _hook(admin, receiver.url, event_type="all_events")
    _hook(admin, receiver.url, event_type="email_sent")
    results = sandbox.dispatch_event(sandbox.build_event_payload("reply_received"))
    assert results == {wanted: 200, everything: 200}


_SAMPLES = Path(__file__).parents[1] / "webhook" / "samples"


@pytest.mark.parametrize(
    "sample", sorted(p for p in _SAMPLES.glob("*.json") if p.name != "headers.json"), ids=str
)
def test_deliveries_have_the_fields_of_the_real_samples(sandbox: Sandbox, sample: Path) -> None:
    real = json.loads(sample.read_text())
    payload = sandbox.build_event_payload(real["event_type"])
    assert sorted(payload) == sorted(real)
    assert payload["unibox_url"] is None


def test_deliveries_carry_the_real_user_agent() -> None:
    real = json.loads((_SAMPLES / "headers.json").read_text())
    assert real["user-agent"] == DELIVERY_USER_AGENT
