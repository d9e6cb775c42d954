"""`GET /webhook-events` under each `DeliveryLogOptions` variant: retries, payloads, filters."""

from __future__ import annotations

import pytest

from instantly_sandbox import DeliveryLogOptions


def _failing_then_ok(sandbox_factory, client_for, receiver, options: DeliveryLogOptions):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty", delivery_log=options)
    admin = client_for(sb)
    hook = admin.post(
        "/webhooks", json={"target_hook_url": receiver.url, "event_type": "all_events"}
    )
    hook_id = hook.json()["id"]
    receiver.status = 503
    sb.deliver_webhook_event(hook_id)
    receiver.status = 200
    assert sb.retry_webhook_events() == 1
    return sb, admin


def test_retries_as_separate_records_share_the_group_id(
    sandbox_factory, client_for, receiver
) -> None:
    options = DeliveryLogOptions(retry_limit=2, retries="separate")
    _, admin = _failing_then_ok(sandbox_factory, client_for, receiver, options)

    first, retry = admin.get("/webhook-events").json()["items"]
    assert (first["success"], first["retry_count"], first["status_code"]) == (False, 0, 503)
    assert (retry["success"], retry["retry_count"], retry["retry_successful"]) == (True, 1, True)
    assert first["retry_group_id"] == retry["retry_group_id"] == first["id"]
    assert first["will_retry"] is False  # it was retried
    assert first["payload"] == retry["payload"]


def test_a_retry_in_place_flips_the_one_record(sandbox_factory, client_for, receiver) -> None:
    options = DeliveryLogOptions(retry_limit=2, retries="in_place")
    _, admin = _failing_then_ok(sandbox_factory, client_for, receiver, options)

    (record,) = admin.get("/webhook-events").json()["items"]
    assert (record["success"], record["retry_count"], record["will_retry"]) == (True, 1, False)


def test_a_failure_announces_its_retry_until_the_limit(
    sandbox_factory, client_for, receiver
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=DeliveryLogOptions(retry_limit=1))
    admin = client_for(sb)
    hook_id = admin.post(
        "/webhooks", json={"target_hook_url": receiver.url, "event_type": "all_events"}
    ).json()["id"]
    receiver.status = 500
    sb.deliver_webhook_event(hook_id)
    (pending,) = admin.get("/webhook-events").json()["items"]
    assert pending["will_retry"] is True
    assert pending["timestamp_next_retry"] > pending["timestamp_created"]
    sb.retry_webhook_events()
    last = admin.get("/webhook-events").json()["items"][-1]
    assert (last["retry_count"], last["will_retry"]) == (1, False)
    assert sb.retry_webhook_events() == 0


@pytest.mark.parametrize(
    "shown", [("listed", True, True), ("detail_only", False, True), ("absent", False, False)]
)
def test_payload_variants(sandbox_factory, client_for, receiver, shown) -> None:
    payload, listed, detail = shown
    sb = sandbox_factory(seed="empty", delivery_log=DeliveryLogOptions(payload=payload))
    admin = client_for(sb)
    hook_id = admin.post(
        "/webhooks", json={"target_hook_url": receiver.url, "event_type": "all_events"}
    ).json()["id"]
    sb.deliver_webhook_event(hook_id)
    (item,) = admin.get("/webhook-events").json()["items"]
    assert ("payload" in item) is listed
    assert ("payload" in admin.get(f"/webhook-events/{item['id']}").json()) is detail


def test_order_filters_and_timestamps(sandbox_factory, client_for, receiver) -> None:
    options = DeliveryLogOptions(
        order="desc", success_filter="ignored", search_filter="ignored", timestamps="offset"
    )
    sb = sandbox_factory(seed="empty", delivery_log=options)
    admin = client_for(sb)
    hook_id = admin.post(
        "/webhooks", json={"target_hook_url": receiver.url, "event_type": "all_events"}
    ).json()["id"]
    for _ in range(3):
        sb.deliver_webhook_event(hook_id)
    first = admin.get("/webhook-events", params={"limit": 2, "success": "false"}).json()
    rest = admin.get(
        "/webhook-events", params={"starting_after": first["next_starting_after"], "search": "x"}
    ).json()
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first, filters ignored, all three
    assert len(ids) == 3
    assert first["items"][0]["timestamp_created"].endswith("+00:00")


def test_the_control_api_sets_the_variant_and_runs_retries(sandbox, receiver) -> None:
    import httpx

    control = sandbox.control_url
    assert httpx.put(f"{control}/delivery-log", json={"retry_limit": 1}).status_code == 200
    assert httpx.put(f"{control}/delivery-log", json={"order": "sideways"}).status_code == 400
    hook = sandbox.state.webhook_named("crm-replies")
    reply = httpx.post(f"{control}/webhooks/{hook.id}/deliver", json={"unreachable": True})
    assert reply.status_code == 502
    assert receiver.requests == []  # the target was never contacted
    with sandbox.state.lock:
        hook.target_hook_url = receiver.url
    assert httpx.post(f"{control}/webhook-events/retry").json() == {"retried": 1}
    assert len(receiver.requests) == 1


class _Records:
    """What the listing's order cache reads of a workspace: its records by id."""

    def __init__(self, ids: list[str]) -> None:
        self.webhook_events = dict.fromkeys(ids)


def test_the_order_cache_never_serves_a_gone_workspaces_ids() -> None:
    """The cache is keyed by id(), which a later workspace can be given: a full run once listed
    another sandbox's ids (KeyError, the connection dropped). An entry now goes with its
    workspace, and an entry whose workspace is not this one is rebuilt."""
    import gc

    from instantly_sandbox.routes import webhook_events

    first = _Records(["a-1", "a-2"])
    assert webhook_events._ordered_ids(first) == ["a-1", "a-2"]  # type: ignore[arg-type]
    key = id(first)
    assert key in webhook_events._ORDER
    del first
    gc.collect()
    assert key not in webhook_events._ORDER
    second = _Records(["b-2", "b-1"])
    assert webhook_events._ordered_ids(second) == ["b-1", "b-2"]  # type: ignore[arg-type]
