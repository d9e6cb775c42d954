"""Concurrent deliveries rotate once; a consumer keeps working straight through rotations."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from rotation_helpers import GRACE, MANAGED, World

from instantly_guard.errors import InstantlyError
from instantly_guard.rotation.errors import RotationBusyError
from instantly_guard.rotation.results import Outcome
from instantly_guard.secrets.provider import secret_key_provider


def _deliver_concurrently(world: World, event: Any, n: int = 2) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def deliver(i: int) -> None:
        barrier.wait()
        try:
            results[i] = world.rotator.handle(event)
        except Exception as exc:  # collected and asserted on below
            results[i] = exc

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_concurrent_deliveries_of_one_event_rotate_once(world: World) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    versions_before = len(world.store.inner.list_versions(MANAGED))
    event = world.rotate_event()

    results = _deliver_concurrently(world, event)

    rotated = [r for r in results if getattr(r, "outcome", None) is Outcome.ROTATED]
    assert len(rotated) == 1, results
    other = next(r for r in results if r is not rotated[0])
    # The loser either saw the lease (and asks Pub/Sub to retry) or came after the finish.
    assert isinstance(other, RotationBusyError) or other.outcome is Outcome.DUPLICATE
    # Pub/Sub redelivers the loser's message: it finds the rotation done.
    assert world.rotator.handle(event).outcome is Outcome.DUPLICATE

    assert len(world.store.inner.list_versions(MANAGED)) == versions_before + 1
    minted = [k for k in world.managed_keys() if k.name.endswith(event.rotation_id)]
    assert len(minted) == 1
    world.assert_consistent()


def test_many_concurrent_deliveries_still_mint_one_key(local_world: World) -> None:
    world = local_world
    world.declare()
    event = world.rotate_event()

    results = _deliver_concurrently(world, event, n=6)

    assert sum(getattr(r, "outcome", None) is Outcome.ROTATED for r in results) == 1
    assert all(
        isinstance(r, RotationBusyError) or r.outcome in (Outcome.ROTATED, Outcome.DUPLICATE)
        for r in results
    )
    assert len(world.managed_keys()) == 1
    assert len(world.store.inner.list_versions(MANAGED)) == 1
    world.assert_consistent()


def test_a_consumer_in_a_loop_never_sees_a_failed_call_during_rotations(world: World) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    provider = secret_key_provider(world.store.inner, MANAGED, ttl=0.05)
    failures: list[str] = []
    calls = 0
    stop = threading.Event()

    def consume() -> None:
        nonlocal calls
        with world.clients(provider) as client:
            while not stop.is_set():
                try:
                    client.probe("/audit-logs", limit=1)
                except InstantlyError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                calls += 1

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        for _ in range(4):
            assert world.rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED
            time.sleep(0.15)  # real time for the consumer to run on both keys
            world.clock.advance(GRACE + timedelta(seconds=1))
            swept = world.rotator.sweep()[MANAGED]
            assert swept.revoked_versions  # type: ignore[union-attr]
            time.sleep(0.15)  # and past the revocation
    finally:
        stop.set()
        consumer.join(timeout=10)

    assert calls > 20
    assert failures == []
    world.assert_consistent()


def test_a_consumer_follows_even_an_immediate_revocation(local_world: World) -> None:
    """`--revoke-now` (a leaked key): the consumer's cached key dies at once; its next call
    gets a 401, the provider re-reads `current`, and the call is repeated with the new key."""
    world = local_world
    world.declare()
    world.rotator.handle(world.rotate_event())
    provider = secret_key_provider(world.store.inner, MANAGED, ttl=60.0)
    with world.clients(provider) as client:
        client.probe("/audit-logs", limit=1)  # caches the key for a minute
        time.sleep(1.1)  # past the provider's minimum interval between re-reads
        world.rotator.rotate(MANAGED, world.manual(revoke_now=True))
        client.probe("/audit-logs", limit=1)
