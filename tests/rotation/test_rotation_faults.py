"""Failure at every step boundary, then redelivery of the same event.

After each: exactly one new key for the rotation, the old key revoked only after the grace, no
orphaned managed keys in the sandbox, and `current` (and `latest`) working throughout.

Store calls of one rotation, in order: update #1 claims the lease; update #2 records TESTED
(after POST /api-keys and the test call); add_version #1 stores the key; update #3 points
`pending` at it (STORED); update #4 finishes (moves `current`/`previous`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rotation_helpers import GRACE, LEASE, MANAGED, PREFIX, Crash, World

from instantly_guard.errors import BackendError, InstantlyError
from instantly_guard.rotation.errors import RotationBusyError, RotationError
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import Phase, RotationState
from instantly_guard.rotation.results import Outcome
from instantly_guard.secret import Secret


def _rotated_once(world: World) -> Secret:
    world.declare()
    world.rotator.handle(world.rotate_event())
    return world.current_key()


def _redeliver_and_check(world: World, event: RotateRequest, old: Secret) -> None:
    result = world.rotator.handle(event)
    assert result.outcome in (Outcome.ROTATED, Outcome.DUPLICATE)
    state = RotationState.read(world.store.inner.get(MANAGED))
    assert state.phase is Phase.IDLE
    assert state.lease is None
    new = world.current_key()
    assert new != old
    assert world.latest_key() == new
    this_rotation = [k for k in world.managed_keys() if k.name.endswith("/" + event.rotation_id)]
    assert len(this_rotation) == 1, [k.name for k in this_rotation]
    assert world.key_record(new).id == this_rotation[0].id
    assert world.key_works(old), "old key revoked before the grace"
    world.assert_consistent()

    # A further redelivery changes nothing.
    assert world.rotator.handle(event).outcome is Outcome.DUPLICATE
    assert world.current_key() == new

    world.clock.advance(GRACE + timedelta(seconds=1))
    world.rotator.sweep()
    assert not world.key_works(old)
    assert [k.id for k in world.managed_keys()] == [this_rotation[0].id]
    world.assert_consistent()


def _assert_still_serving(world: World, old: Secret) -> None:
    """Between the failure and the redelivery: consumers still have a working key."""
    assert world.current_key() == old
    assert world.key_works(old)
    assert world.key_works(world.latest_key())


INSTANTLY_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("POST /api-keys", {"mode": "error_500"}),
    ("POST /api-keys", {"mode": "error_500", "commit": True}),
    ("POST /api-keys", {"mode": "error_503", "commit": True}),
    ("POST /api-keys", {"mode": "timeout"}),
    ("POST /api-keys", {"mode": "timeout", "commit": True}),
    ("POST /api-keys", {"mode": "lost_response"}),
    ("GET /api-keys", {"mode": "error_503", "times": 3}),
    ("GET /audit-logs", {"mode": "error_500", "times": 3}),
    ("GET /audit-logs", {"mode": "timeout", "times": 3}),
]


@pytest.mark.parametrize(
    ("operation", "fault"),
    INSTANTLY_FAULTS,
    ids=[f"{op}-{'-'.join(str(v) for v in f.values())}" for op, f in INSTANTLY_FAULTS],
)
def test_instantly_failure_then_redelivery(
    world: World, operation: str, fault: dict[str, Any]
) -> None:
    old = _rotated_once(world)
    event = world.rotate_event()
    world.sandbox.faults.fail_next(operation, **fault)

    with pytest.raises((InstantlyError, RotationError)) as info:
        world.rotator.handle(event)

    assert getattr(info.value, "retryable", False), "this failure must be retried"
    _assert_still_serving(world, old)
    if operation == "GET /audit-logs":  # the failed test deleted the new key at once
        assert len(world.managed_keys()) == 1
    _redeliver_and_check(world, event, old)


STORE_FAULTS = [
    ("update", 1, False),
    ("update", 1, True),
    ("update", 2, False),
    ("update", 2, True),
    ("add_version", 1, False),
    ("update", 3, False),
    ("update", 3, True),
    ("update", 4, False),
    ("update", 4, True),
]


@pytest.mark.parametrize(("method", "at", "after"), STORE_FAULTS)
def test_store_failure_then_redelivery(world: World, method: str, at: int, after: bool) -> None:
    old = _rotated_once(world)
    event = world.rotate_event()
    world.store.fail(method, at=at, after=after)

    with pytest.raises(BackendError) as info:
        world.rotator.handle(event)

    assert info.value.retryable
    if (method, at, after) != ("update", 4, True):  # that one did finish before failing
        _assert_still_serving(world, old)
    state = RotationState.read(world.store.inner.get(MANAGED))
    assert state.lease is None, "a failed attempt releases its lease"
    _redeliver_and_check(world, event, old)


def test_a_lost_add_version_answer_is_recovered_by_fingerprint(world: World) -> None:
    old = _rotated_once(world)
    event = world.rotate_event()
    world.store.fail("add_version", at=1, after=True)

    result = world.rotator.handle(event)  # no failure surfaces: the version is found

    assert result.outcome is Outcome.ROTATED
    assert len(world.store.inner.list_versions(MANAGED)) == 2
    _redeliver_and_check(world, event, old)


CRASHES = [
    ("update", 1, True),  # lease claimed, nothing else
    ("update", 2, False),  # key created and tested, never recorded
    ("update", 2, True),  # TESTED recorded, key string only in memory
    ("add_version", 1, False),  # ... and never stored
    ("add_version", 1, True),  # stored as latest, `pending` not set
    ("update", 3, True),  # STORED
    ("update", 4, False),  # STORED, finish not written
    ("update", 4, True),  # finished
]


@pytest.mark.parametrize(("method", "at", "after"), CRASHES)
def test_crash_between_steps_then_redelivery(
    world: World, method: str, at: int, after: bool
) -> None:
    old = _rotated_once(world)
    event = world.rotate_event()
    world.store.fail(method, at=at, after=after, exc=Crash)

    with pytest.raises(Crash):
        world.rotator.handle(event)

    if (method, at, after) != ("update", 4, True):
        _assert_still_serving(world, old)
        # The dead process still holds the lease: a redelivery now backs off (and is retried).
        with pytest.raises(RotationBusyError) as info:
            world.rotator.handle(event)
        assert info.value.retryable
    world.clock.advance(LEASE + timedelta(seconds=1))
    _redeliver_and_check(world, event, old)


def test_a_sweep_resumes_a_rotation_whose_delivery_was_lost(world: World) -> None:
    old = _rotated_once(world)
    event = world.rotate_event()
    world.store.fail("update", at=3, after=True, exc=Crash)
    with pytest.raises(Crash):
        world.rotator.handle(event)

    world.clock.advance(LEASE + timedelta(seconds=1))
    results = world.rotator.sweep()

    assert results[MANAGED].outcome is Outcome.ROTATED  # type: ignore[union-attr]
    assert world.current_key() != old
    world.assert_consistent()


def test_a_failed_revocation_is_retried_by_the_next_sweep(world: World) -> None:
    old = _rotated_once(world)
    world.rotator.handle(world.rotate_event())
    world.clock.advance(GRACE + timedelta(seconds=1))
    world.sandbox.faults.fail_next("DELETE /api-keys/{id}", times=3, mode="error_500")

    first = world.rotator.sweep()
    assert isinstance(first[MANAGED], InstantlyError)
    assert world.key_works(old)
    assert world.aliases()["previous"] == "1"

    second = world.rotator.sweep()
    assert second[MANAGED].revoked_versions == ["1"]  # type: ignore[union-attr]
    assert not world.key_works(old)
    world.assert_consistent()


def test_a_revocation_whose_delete_answer_was_lost_completes(world: World) -> None:
    old = _rotated_once(world)
    world.rotator.handle(world.rotate_event())
    world.clock.advance(GRACE + timedelta(seconds=1))
    world.sandbox.faults.fail_next("DELETE /api-keys/{id}", mode="lost_response")

    world.rotator.sweep()
    world.rotator.sweep()

    assert not world.key_works(old)
    assert "previous" not in world.aliases()
    world.assert_consistent()


def test_keys_left_by_a_lost_create_are_deleted_before_a_new_one_is_made(
    world: World,
) -> None:
    old = _rotated_once(world)
    event = world.rotate_event()
    world.sandbox.faults.fail_next("POST /api-keys", mode="lost_response")
    with pytest.raises(InstantlyError):
        world.rotator.handle(event)
    (leftover,) = [k for k in world.managed_keys() if k.name.endswith(event.rotation_id)]

    world.rotator.handle(event)

    assert leftover.id not in world.sandbox.state.api_keys
    assert world.key_record(world.current_key()).name == f"{PREFIX}/{MANAGED}/{event.rotation_id}"
    assert world.key_works(old)
