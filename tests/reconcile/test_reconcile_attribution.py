"""Only what our own webhooks would have delivered is republished (issue 18, High).

A foreign webhook aimed at our receiver (anyone who can create a webhook sees its URL through
`GET /webhooks`) has its deliveries refused with 401; they must never come out of the
reconciler as events Instantly delivered to us, and it must never be resumed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from instantly_guard.errors import ConfigError
from instantly_guard.reconcile.resume import ProbeResult
from instantly_guard.reconcile.service import build_service
from instantly_guard.webhook.payload import canonical_json, event_id
from instantly_sandbox import DeliveryLogOptions

from .reconcile_support import (
    HEADER,
    SECRET,
    ReceiverServer,
    add_foreign_webhook,
    reconcile_env,
)

ORDERS = {"oldest-first": DeliveryLogOptions(), "newest-first": DeliveryLogOptions(order="desc")}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


def _our_webhook(sb, url: str, event_type: str, campaign: str | None = None) -> str:  # type: ignore[no-untyped-def]
    from instantly_sandbox.state import WebhookRecord

    ws = sb.state
    with ws.lock:
        hook_id, stamp = ws.new_id()
        ws.webhooks[hook_id] = WebhookRecord(
            id=hook_id,
            organization=ws.id,
            target_hook_url=url,
            event_type=event_type,
            campaign=campaign,
            timestamp_created=stamp,
            name="reconcile-test",
            headers={HEADER: SECRET},
        )
    return hook_id


@pytest.mark.parametrize("order", list(ORDERS), ids=list(ORDERS))
def test_a_foreign_webhooks_refused_deliveries_are_never_republished(
    sandbox_factory, receiver: ReceiverServer, caplog, order: str
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=ORDERS[order])
    ours_campaign, other_campaign_id = sb.state.new_id()[0], sb.state.new_id()[0]
    ours = _our_webhook(sb, receiver.url, "reply_received", campaign=ours_campaign)
    foreign = add_foreign_webhook(sb, receiver.url, event_type="all_events")
    reply = sb.build_event_payload(
        "reply_received", lead_email="a@prospect.example", campaign_id=ours_campaign
    )
    interested = sb.build_event_payload(
        "lead_interested",
        lead_email="b@prospect.example",
        campaign_id=ours_campaign,
        firstName="\u202eforged",
    )
    other_campaign = sb.build_event_payload(
        "reply_received", lead_email="c@prospect.example", campaign_id=other_campaign_id
    )
    statuses = [sb.dispatch_event(p) for p in (reply, interested, other_campaign)]
    assert statuses[0] == {ours: 200, foreign: 401}  # both got the reply; ours accepted it
    assert statuses[1] == statuses[2] == {foreign: 401}  # ours subscribes to neither

    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        with caplog.at_level(logging.WARNING, logger="instantly_guard.reconcile"):
            report = service.run("job@1")
    finally:
        service.close()

    assert receiver.outbox_ids() == [event_id(canonical_json(reply))]  # delivered, not reconciled
    assert not any(m.attributes.get("reconciled") for m in receiver.outbox())
    assert report.republished == 0
    # The reply's 401 copy went to the foreign webhook; ours delivered the event (same id).
    # The other two are events our webhook never subscribed to: foreign.
    assert (report.retried_ok, report.foreign, report.foreign_webhooks) == (1, 2, 1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(getattr(r, "fields", {}).get("action") == "foreign_webhook" for r in errors)
    assert foreign in caplog.text


def test_our_webhook_with_a_secret_out_of_step_is_republished_and_marked(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    """No foreign webhook could have sent it: a 401 is our own webhook whose header lags the
    receiver's secret (a rotation half done). Its events are republished, marked."""
    sb = sandbox_factory(seed="empty")
    ours = _our_webhook(sb, receiver.url, "all_events")
    with sb.state.lock:
        sb.state.webhooks[ours].headers = {HEADER: "a-secret-the-receiver-no-longer-holds"}
    payloads = [
        sb.build_event_payload("reply_received", lead_email=f"l{i}@p.example") for i in range(3)
    ]
    assert [sb.deliver_webhook_event(ours, p) for p in payloads] == [401, 401, 401]

    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.republished, report.unattributed, report.foreign) == (3, 0, 0)
    assert sorted(receiver.outbox_ids()) == sorted(event_id(canonical_json(p)) for p in payloads)
    assert all(m.attributes.get("auth_refused") == "true" for m in receiver.outbox())


def test_a_401_a_foreign_webhook_could_have_sent_is_not_republished(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    """Our secret out of step *and* a foreign webhook subscribed to the same events: a 401
    record cannot be told from the foreign webhook's, so it is held back (ERROR, alert)."""
    sb = sandbox_factory(seed="empty")
    ours = _our_webhook(sb, receiver.url, "reply_received")
    foreign = add_foreign_webhook(sb, receiver.url, event_type="reply_received")
    with sb.state.lock:
        sb.state.webhooks[ours].headers = {HEADER: "a-secret-the-receiver-no-longer-holds"}
    payload = sb.build_event_payload("reply_received", lead_email="x@p.example")
    assert sb.dispatch_event(payload) == {ours: 401, foreign: 401}

    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.republished, report.unattributed, report.foreign_webhooks) == (0, 2, 1)
    assert receiver.outbox_ids() == []


def test_only_our_webhooks_are_resumed(sandbox_factory, receiver: ReceiverServer) -> None:
    sb = sandbox_factory(seed="empty")
    ours = _our_webhook(sb, receiver.url, "all_events")
    foreign = add_foreign_webhook(sb, receiver.url)
    sb.disable_webhook(ours)
    sb.disable_webhook(foreign)
    env = reconcile_env(sb, receiver.state_dir, receiver.url, RECONCILE_RESUME="true")
    env["INSTANTLY_API_KEY"] = sb.add_key("resumer", ["webhook_events:read", "webhooks:update"]).key
    service = build_service(env, probe=lambda _url: ProbeResult(True, "405 Allow: POST"))
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert report.resumed == 1
    assert sb.state.webhooks[ours].status == 1
    assert sb.state.webhooks[foreign].status == -1  # never resumed: not ours


def test_without_the_managed_webhook_ids_the_reconciler_does_not_start(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty")
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    env["RECONCILE_WEBHOOK_IDS"] = ""
    with pytest.raises(ConfigError, match="RECONCILE_WEBHOOK_IDS is required"):
        build_service(env)


def _hook(hook_id: str, event_type: str | None, campaign: str | None = None):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from instantly_guard.instantly.models import Webhook

    return Webhook(
        id=hook_id,
        organization="org",
        target_hook_url="https://r.example/",
        timestamp_created=datetime.now(UTC),
        event_type=event_type,
        campaign=campaign,
    )


@pytest.mark.parametrize(
    ("subscribed", "campaign", "delivered", "delivered_campaign", "covered"),
    [
        ("all_events", None, "reply_received", "c1", True),
        ("all_events", "c1", "reply_received", "c2", False),
        ("email_link_clicked", None, "link_clicked", "c1", True),  # delivered under another name
        ("email_link_clicked", None, "email_link_clicked", "c1", False),
        (None, None, "Meeting booked", "c1", True),  # custom label events
        (None, None, "reply_received", "c1", False),
        ("reply_received", None, None, "c1", False),  # no event type: nobody's delivery
    ],
)
def test_a_record_is_ours_only_if_one_of_our_subscriptions_covers_it(
    subscribed, campaign, delivered, delivered_campaign, covered
) -> None:  # type: ignore[no-untyped-def]
    from instantly_guard.reconcile.attribution import Targets, Verdict

    targets = Targets.of([_hook("ours", subscribed, campaign)], ["ours"])
    payload = {"event_type": delivered, "campaign_id": delivered_campaign}
    verdict = targets.attribute("https://r.example/", payload, None)
    assert (verdict is Verdict.OURS) == covered
