"""A big backlog is settled progressively under a time budget, and a run costs what is new
(issues 18 and 22), under each listing order the document allows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from instantly_guard.publish.local import OutboxPublisher
from instantly_guard.reconcile.service import build_service
from instantly_guard.webhook.payload import canonical_json, event_id
from instantly_sandbox import DeliveryLogOptions

from .reconcile_support import Clock, add_webhook, inject_failures, reconcile_env

URL = "https://hooks.example/instantly"
FAST = {"INSTANTLY_RATE_PER_SECOND": "50", "INSTANTLY_RATE_PER_MINUTE": "6000"}
ORDERS = {
    "oldest-first": DeliveryLogOptions(),
    "newest-first": DeliveryLogOptions(order="desc"),
    "search-ignored": DeliveryLogOptions(search_filter="ignored"),
    "newest-first-payload-in-detail": DeliveryLogOptions(order="desc", payload="detail_only"),
}


class SlowPublisher:
    """The outbox, where every publish takes a second of the reconciler's clock."""

    def __init__(self, state_dir: Path, clock: Clock) -> None:
        self.inner, self.clock = OutboxPublisher(state_dir), clock

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        self.clock.advance(timedelta(seconds=1))
        return self.inner.publish(data, attributes, timeout)

    def close(self) -> None:
        self.inner.close()


def _payloads(sb, n: int, lead: str = "lead") -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        sb.build_event_payload("reply_received", lead_email=f"{lead}{i}@prospect.example")
        for i in range(n)
    ]


@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_runs_cut_off_by_the_time_budget_settle_a_big_backlog_progressively(
    sandbox_factory, tmp_path: Path, order: str
) -> None:
    sb = sandbox_factory(seed="empty", delivery_log=ORDERS[order], record_responses=False)
    hook = add_webhook(sb, URL)
    backlog = _payloads(sb, 800)
    inject_failures(sb, hook, backlog)
    clock = Clock()
    env = reconcile_env(sb, tmp_path, URL, RECONCILE_TIME_BUDGET="150s", **FAST)
    publisher = SlowPublisher(tmp_path, clock)
    service = build_service(
        env, publisher=publisher, clock=clock, client_options={"sleep": lambda _s: None}
    )
    from instantly_guard.publish.local import read_outbox

    try:
        cut = [service.run(f"job@{i}") for i in range(3)]
        published = [m.attributes["event_id"] for m in read_outbox(tmp_path)]
        # Each run stops at the first page boundary past its budget: 2 pages of 100.
        assert [(r.outcome, r.republished) for r in cut] == [("time_budget", 200)] * 3
        assert len(published) == len(set(published)) == 600  # progress, no run redid another's
        rest = [service.run(f"job@{i}") for i in range(3, 6)]
    finally:
        service.close()

    assert [r.outcome for r in rest] == ["time_budget", "complete", "complete"]
    assert sum(r.republished for r in cut + rest) == 800
    ids = [m.attributes["event_id"] for m in read_outbox(tmp_path)]
    assert sorted(ids) == sorted(event_id(canonical_json(p)) for p in backlog)


@pytest.mark.parametrize("order", list(ORDERS), ids=list(ORDERS))
def test_a_run_costs_what_is_new_not_the_window(
    sandbox_factory, tmp_path: Path, order: str
) -> None:
    """1,000 settled records in the window: a caught-up run makes 2 requests (the webhooks,
    one empty page); with 150 new ones at most ceil(150/100) + 2 (+1 per record fetched for
    its payload)."""
    sb = sandbox_factory(seed="empty", delivery_log=ORDERS[order], record_responses=True)
    hook = add_webhook(sb, URL)
    inject_failures(sb, hook, _payloads(sb, 1000))
    service = build_service(
        reconcile_env(sb, tmp_path, URL, **FAST), client_options={"sleep": lambda _s: None}
    )
    try:
        first = service.run("job@1")
        before = sb.responses.total
        caught_up = service.run("job@2")
        caught_up_requests = sb.responses.total - before
        new = _payloads(sb, 150, lead="new")
        inject_failures(sb, hook, new, start=datetime.now(UTC) - timedelta(minutes=5))
        before = sb.responses.total
        busy = service.run("job@3")
        busy_requests = sb.responses.total - before
    finally:
        service.close()

    assert (first.outcome, first.republished) == ("complete", 1000)
    assert (caught_up.outcome, caught_up.checked, caught_up.republished) == ("complete", 0, 0)
    assert caught_up_requests == caught_up.requests <= 2
    assert (busy.outcome, busy.republished) == ("complete", 150)
    fetched = 150 if ORDERS[order].payload == "detail_only" else 0
    assert busy_requests == busy.requests <= math.ceil(150 / 100) + 2 + fetched
