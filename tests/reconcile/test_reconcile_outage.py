"""An outage of N deliveries reconciles to N events in the outbox, each exactly once, under every
reading of `GET /webhook-events` the OpenAPI document allows (docs/reconcile.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from instantly_guard.reconcile.service import ReconcileService, build_service
from instantly_guard.webhook.payload import canonical_json, event_id
from instantly_sandbox import DeliveryError, DeliveryLogOptions, Sandbox

from .reconcile_support import Clock, ReceiverServer, add_webhook, deliver, reconcile_env

VARIANTS = {
    "documented-defaults": DeliveryLogOptions(),
    "newest-first": DeliveryLogOptions(order="desc"),
    "payload-only-in-detail": DeliveryLogOptions(payload="detail_only"),
    "success-filter-ignored": DeliveryLogOptions(success_filter="ignored"),
    "search-filter-ignored": DeliveryLogOptions(search_filter="ignored"),
    "offset-timestamps": DeliveryLogOptions(timestamps="offset"),
    "retries-as-records": DeliveryLogOptions(retry_limit=2, retries="separate"),
    "retries-in-place": DeliveryLogOptions(retry_limit=2, retries="in_place"),
    "everything-at-once": DeliveryLogOptions(
        order="desc",
        payload="detail_only",
        success_filter="ignored",
        search_filter="ignored",
        timestamps="offset",
        retry_limit=1,
        retries="in_place",
    ),
}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


def _service(sb: Sandbox, receiver: ReceiverServer, **extra: str) -> ReconcileService:
    env = reconcile_env(sb, receiver.state_dir, receiver.url, **extra)
    return build_service(env, client_options={"sleep": lambda _s: None})


def _ids(payloads: list[dict]) -> set[str]:
    return {event_id(canonical_json(p)) for p in payloads}


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_an_outage_of_n_deliveries_reconciles_to_n_events_each_once(
    sandbox_factory, receiver: ReceiverServer, variant: str
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=VARIANTS[variant])
    hook = add_webhook(sb, receiver.url)
    before = deliver(sb, hook, 3, lead="before")  # the receiver is up: delivered
    receiver.stop()
    missed = deliver(sb, hook, 7, lead="outage")  # the receiver is down: every attempt fails
    sb.retry_webhook_events()  # Instantly's retries fail too
    receiver.start()
    after = deliver(sb, hook, 2, lead="after")

    # Retries still pending are left to Instantly for RECONCILE_RETRY_GRACE: 0s here.
    service = _service(sb, receiver, RECONCILE_RETRY_GRACE="0s")
    try:
        report = service.run("job@1")
        again = service.run("job@2")
    finally:
        service.close()

    outbox = receiver.outbox()
    ids = [m.attributes["event_id"] for m in outbox]
    assert sorted(ids) == sorted(_ids(before + missed + after))  # every event exactly once
    assert len(ids) == len(set(ids)) == 12
    reconciled = {m.attributes["event_id"] for m in outbox if m.attributes.get("reconciled")}
    assert reconciled == _ids(missed)
    assert (report.outcome, report.missing, report.republished) == ("complete", 7, 7)
    assert report.unrecoverable == report.refused == 0
    assert (again.outcome, again.missing, again.republished, again.settled) == ("complete", 0, 0, 0)


def test_a_late_copy_of_a_delivered_event_is_dropped_by_the_outbox(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    """A delivery that failed at Instantly's end (a timeout after our 200, say) is republished;
    the outbox already holds the event under its id and keeps the first copy only."""
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    payloads = deliver(sb, hook, 4)
    with sb.state.lock:
        for record in sb.state.webhook_events.values():
            record.success, record.status_code, record.error_message = False, None, "timeout"

    service = _service(sb, receiver)
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.missing, report.republished) == (4, 4)
    assert sorted(receiver.outbox_ids()) == sorted(_ids(payloads))
    assert not any(m.attributes.get("reconciled") for m in receiver.outbox())


def test_failed_attempts_of_one_event_are_published_once(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payload = deliver(sb, hook, 1)[0]
    for _ in range(3):  # Instantly (or a person) delivering the same event again
        with pytest.raises(DeliveryError, match="failed"):  # nothing listens
            sb.deliver_webhook_event(hook, payload, timeout=1.0)
    receiver.start()

    service = _service(sb, receiver)
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.checked, report.failed, report.missing, report.republished) == (4, 4, 1, 1)
    assert receiver.outbox_ids() == [event_id(canonical_json(payload))]


RETRY_VARIANTS = {
    "separate-records": DeliveryLogOptions(retry_limit=3, retries="separate"),
    # Successes without a payload in the listing: only retry_group_id ties them to the failure.
    "separate-records-payload-in-detail": DeliveryLogOptions(
        retry_limit=3, retries="separate", payload="detail_only"
    ),
    "in-place": DeliveryLogOptions(retry_limit=3, retries="in_place"),
}


@pytest.mark.parametrize("variant", list(RETRY_VARIANTS), ids=list(RETRY_VARIANTS))
def test_a_retry_that_delivered_the_event_leaves_nothing_to_republish(
    sandbox_factory, receiver: ReceiverServer, variant: str
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=RETRY_VARIANTS[variant])
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payloads = deliver(sb, hook, 5)
    receiver.start()
    sb.retry_webhook_events()  # the first retry succeeds

    service = _service(sb, receiver, RECONCILE_RETRY_GRACE="0s")
    try:
        report = service.run("job@1")
    finally:
        service.close()

    # Updated in place, the records show the retry's success: nothing failed is left to see.
    failed = 0 if RETRY_VARIANTS[variant].retries == "in_place" else 5
    assert (report.failed, report.retried_ok, report.missing) == (failed, failed, 0)
    assert sorted(receiver.outbox_ids()) == sorted(_ids(payloads))
    assert not any(m.attributes.get("reconciled") for m in receiver.outbox())


def test_a_failure_instantly_will_retry_is_left_to_instantly_within_the_grace(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=DeliveryLogOptions(retry_limit=3))
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payloads = deliver(sb, hook, 2)
    receiver.start()

    service = _service(sb, receiver, RECONCILE_RETRY_GRACE="1h")
    try:
        first = service.run("job@1")
        assert (first.pending, first.missing, receiver.outbox_ids()) == (2, 0, [])
        sb.retry_webhook_events()  # Instantly retries: delivered
        second = service.run("job@2")
    finally:
        service.close()

    assert (second.retried_ok, second.missing, second.pending) == (2, 0, 0)
    assert sorted(receiver.outbox_ids()) == sorted(_ids(payloads))


def test_a_pending_retry_is_republished_once_the_grace_is_over(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    clock = Clock()
    sb = sandbox_factory(seed="empty", clock=clock, delivery_log=DeliveryLogOptions(retry_limit=3))
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payloads = deliver(sb, hook, 2)
    receiver.start()
    env = reconcile_env(sb, receiver.state_dir, receiver.url, RECONCILE_RETRY_GRACE="10m")
    service = build_service(env, clock=clock, client_options={"sleep": lambda _s: None})
    try:
        first = service.run("job@1")
        clock.advance(timedelta(minutes=11))  # Instantly never retried (or its retries are lost)
        second = service.run("job@2")
    finally:
        service.close()

    assert (first.pending, first.republished) == (2, 0)
    assert (second.pending, second.missing, second.republished) == (0, 2, 2)
    assert sorted(receiver.outbox_ids()) == sorted(_ids(payloads))


def test_a_record_without_any_payload_is_reported_unrecoverable(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=DeliveryLogOptions(payload="absent"))
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    deliver(sb, hook, 3)
    receiver.start()

    service = _service(sb, receiver)
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.missing, report.unrecoverable, report.republished) == (3, 3, 0)
    assert receiver.outbox_ids() == []


@pytest.mark.parametrize("search", ["honoured", "ignored"])
def test_only_our_webhooks_records_are_read(
    sandbox_factory, receiver: ReceiverServer, search: str
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=DeliveryLogOptions(search_filter=search))
    ours = add_webhook(sb, receiver.url)
    other = add_webhook(sb, "http://127.0.0.1:9/elsewhere")  # nothing listens on port 9
    deliver(sb, other, 3)
    receiver.stop()
    missed = deliver(sb, ours, 2)
    receiver.start()

    service = _service(sb, receiver)
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.checked, report.missing) == (2, 2)
    assert sorted(receiver.outbox_ids()) == sorted(_ids(missed))


def test_a_receiver_url_that_is_no_webhooks_target_is_reported(
    sandbox_factory, receiver: ReceiverServer, caplog
) -> None:
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    deliver(sb, hook, 2)
    receiver.start()
    configured = receiver.url.rstrip("/")  # the webhook's target ends with "/"

    service = build_service(reconcile_env(sb, receiver.state_dir, configured))
    try:
        with caplog.at_level("WARNING", logger="instantly_guard.reconcile"):
            report = service.run("job@1")
    finally:
        service.close()

    assert (report.unmatched_urls, report.checked, report.missing) == (1, 0, 0)
    assert "target of none of our webhooks" in caplog.text
