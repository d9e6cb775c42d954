"""Exactly once under crashes and concurrency: a crash between publish and checkpoint, a publish
that fails, redelivered Scheduler runs, overlapping runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from instantly_guard.audit.checkpoint.base import Checkpoint
from instantly_guard.errors import BackendError
from instantly_guard.publish.base import PublishError
from instantly_guard.publish.local import OutboxPublisher
from instantly_guard.reconcile import checkpoint
from instantly_guard.reconcile.service import build_service
from instantly_guard.webhook.payload import canonical_json, event_id
from instantly_sandbox import DeliveryLogOptions

from .reconcile_support import Clock, ReceiverServer, add_webhook, deliver, reconcile_env


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


@pytest.fixture
def outage(sandbox_factory, receiver: ReceiverServer):  # type: ignore[no-untyped-def]
    """A sandbox where 6 deliveries failed while the receiver was down; it is up again."""
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payloads = deliver(sb, hook, 6)
    receiver.start()
    return sb, {event_id(canonical_json(p)) for p in payloads}


class CrashingStore:
    """The checkpoint store port, failing the writes numbered in `dead` (1-based): with the
    claim as write 1, `{2, 3}` is a run that dies after publishing its first page, before that
    page's checkpoint (and its own closing record) is stored."""

    def __init__(self, inner: checkpoint.CheckpointStore, dead: frozenset[int]) -> None:
        self.inner, self.dead, self.writes = inner, dead, 0

    def read(self) -> tuple[Checkpoint | None, int]:
        return self.inner.read()

    def write(self, state: Checkpoint, if_generation: int) -> int:
        self.writes += 1
        if self.writes in self.dead:
            raise BackendError("process killed before the checkpoint was written")
        return self.inner.write(state, if_generation)

    def describe(self) -> str:
        return "crashing"


class FlakyPublisher:
    """The outbox, refusing the publishes numbered in `fail_at` (1-based)."""

    def __init__(self, state_dir: Path, fail_at: set[int]) -> None:
        self.inner, self.fail_at, self.calls = OutboxPublisher(state_dir), fail_at, 0

    def publish(self, data: bytes, attributes, timeout: float) -> str:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls in self.fail_at:
            raise PublishError("Pub/Sub unavailable")
        return self.inner.publish(data, attributes, timeout)

    def close(self) -> None:
        self.inner.close()


def test_a_crash_between_publish_and_checkpoint_publishes_again_and_the_outbox_keeps_one(
    outage, receiver: ReceiverServer
) -> None:
    sb, expected = outage
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    store = CrashingStore(checkpoint.local_store(receiver.state_dir), frozenset({2, 3}))
    clock = Clock()
    service = build_service(env, store=store, clock=clock)
    try:
        crashed = service.run("job@1")
        waiting = service.run("job@2")  # the crashed run's lease still stands
        clock.advance(timedelta(minutes=16))
        rerun = service.run("job@3")
        third = service.run("job@4")
    finally:
        service.close()

    assert (crashed.outcome, crashed.republished) == ("failed", 6)
    assert (waiting.outcome, waiting.republished) == ("busy", 0)
    assert (rerun.outcome, rerun.republished) == ("complete", 6)  # nothing was settled
    assert third.republished == 0
    assert sorted(receiver.outbox_ids()) == sorted(expected)  # each exactly once


def test_a_failed_publish_stops_the_run_and_the_next_run_finishes_the_job(
    outage, receiver: ReceiverServer
) -> None:
    sb, expected = outage
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    publisher = FlakyPublisher(receiver.state_dir, fail_at={3})
    service = build_service(env, publisher=publisher)
    try:
        first = service.run("job@1")
        second = service.run("job@2")
    finally:
        service.close()

    assert (first.outcome, first.republished) == ("failed", 2)
    assert isinstance(first.error, PublishError)
    assert (second.outcome, second.republished) == ("complete", 4)
    assert sorted(receiver.outbox_ids()) == sorted(expected)


def test_a_redelivered_scheduler_run_does_nothing(outage, receiver: ReceiverServer) -> None:
    sb, expected = outage
    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        first = service.run("job@2026-03-04T12:05:00Z")
        repeated = service.run("job@2026-03-04T12:05:00Z")
    finally:
        service.close()

    assert first.republished == 6
    assert (repeated.outcome, repeated.checked, repeated.republished) == ("duplicate", 0, 0)
    assert sorted(receiver.outbox_ids()) == sorted(expected)


def test_overlapping_runs_publish_every_event_once(outage, receiver: ReceiverServer) -> None:
    sb, expected = outage
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    services = [build_service(env) for _ in range(4)]
    reports = []
    barrier = threading.Barrier(len(services))

    def run(index: int) -> None:
        barrier.wait()
        reports.append(services[index].run(f"job@{index}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(services))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for service in services:
        service.close()

    outcomes = sorted(r.outcome for r in reports)
    assert outcomes.count("complete") >= 1
    assert set(outcomes) <= {"complete", "busy"}
    assert sum(r.republished for r in reports) == 6  # only runs that held the lease worked
    assert sorted(receiver.outbox_ids()) == sorted(expected)


def test_a_stale_lease_of_a_crashed_run_is_taken_over(outage, receiver: ReceiverServer) -> None:
    sb, expected = outage
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    store = checkpoint.local_store(receiver.state_dir)
    now = datetime.now(UTC)
    # A run that started 20 minutes ago and never finished (its instance was killed).
    checkpoint.claim(
        store,
        now=now - timedelta(minutes=20),
        start=now - timedelta(days=3),
        run_key="job@0",
        lease=timedelta(minutes=15),
    )
    service = build_service(env)
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.outcome, report.republished) == ("complete", 6)
    assert sorted(receiver.outbox_ids()) == sorted(expected)


def test_a_failed_publish_never_lets_the_checkpoint_pass_an_unsettled_record(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    """Newest-first listing, an outage 8 hours ago and one now, and a publish that fails after
    three: the checkpoint keeps what the page settled before the failure and nothing after it, so
    the next run republishes exactly the other three."""
    clock = Clock()
    clock.advance(timedelta(hours=-10))
    sb = sandbox_factory(seed="empty", clock=clock, delivery_log=DeliveryLogOptions(order="desc"))
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payloads = deliver(sb, hook, 3, lead="old")
    clock.advance(timedelta(hours=8))
    payloads += deliver(sb, hook, 3, lead="new")
    receiver.start()
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    publisher = FlakyPublisher(receiver.state_dir, fail_at={4})
    service = build_service(env, publisher=publisher)
    try:
        first = service.run("job@1")
        second = service.run("job@2")
    finally:
        service.close()

    assert (first.outcome, first.republished, second.republished) == ("failed", 3, 3)
    assert sorted(receiver.outbox_ids()) == sorted(event_id(canonical_json(p)) for p in payloads)


def test_schedulers_retry_of_a_failed_run_runs_again(outage, receiver: ReceiverServer) -> None:
    sb, expected = outage
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    sb.faults.fail_next("GET /webhook-events", times=20, mode="error_503")
    service = build_service(env, client_options={"sleep": lambda _s: None})
    try:
        failed = service.handle("POST", {**SCHEDULED})
        sb.faults.clear()
        retried = service.handle("POST", {**SCHEDULED})  # Scheduler retries the same run
        duplicate = service.handle("POST", {**SCHEDULED})
    finally:
        service.close()

    assert (failed.status, failed.body["outcome"]) == (503, "failed")
    assert (retried.status, retried.body["republished"]) == (200, 6)
    assert duplicate.body["outcome"] == "duplicate"
    assert sorted(receiver.outbox_ids()) == sorted(expected)


SCHEDULED = {
    "X-CloudScheduler-JobName": "instantly-reconcile",
    "X-CloudScheduler-ScheduleTime": "2026-03-04T12:05:00Z",
}


def test_a_run_killed_mid_backlog_loses_nothing_and_the_next_one_goes_on(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    """250 missed events, three pages. The first run dies while writing its second page's
    checkpoint (and cannot close): the first page stays settled, the second is published again
    after the lease, and every event ends in the outbox exactly once."""
    from .reconcile_support import inject_failures

    sb = sandbox_factory(seed="empty", record_responses=False)
    hook = add_webhook(sb, receiver.url)
    payloads = [
        sb.build_event_payload("reply_received", lead_email=f"k{i}@prospect.example")
        for i in range(250)
    ]
    inject_failures(sb, hook, payloads)
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    store = CrashingStore(checkpoint.local_store(receiver.state_dir), frozenset({3, 4}))
    clock = Clock()
    service = build_service(env, store=store, clock=clock)
    try:
        killed = service.run("job@1")
        clock.advance(timedelta(minutes=16))
        rerun = service.run("job@2")
    finally:
        service.close()

    assert (killed.outcome, killed.republished) == ("failed", 200)
    assert (rerun.outcome, rerun.republished) == ("complete", 150)  # page 2 again, then page 3
    assert sorted(receiver.outbox_ids()) == sorted(event_id(canonical_json(p)) for p in payloads)
