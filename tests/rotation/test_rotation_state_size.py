"""The rotation state lives in the secret's annotations, which Secret Manager bounds (keys plus
values less than 16 KiB): it is kept compact, a rotation that could not be recorded is refused
before it mints anything, and old keys piling up unrevoked raise an alert."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rotation_helpers import ADMIN, MANAGED, World

from instantly_guard.errors import InstantlyError
from instantly_guard.rotation.errors import RotationStateFullError
from instantly_guard.rotation.model import (
    AnnotationKey,
    Destruction,
    Kind,
    ManagedConfig,
    Revocation,
    RotationState,
)
from instantly_guard.scopes import PROFILES
from instantly_guard.secrets.base import ANNOTATIONS_MAX_BYTES, SecretMetadata, annotations_size

T0 = datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)


def _declared() -> dict[str, str]:
    """A realistic declaration: the rotation admin's scopes, custom grace and retention."""
    _, notes = ManagedConfig.declare(
        kind=Kind.API_KEY,
        scopes=PROFILES["key_rotation_admin"].scope_strings,
        admin_secret=ADMIN,
        grace="1d",
        retention="14d",
    )
    return notes


def test_hourly_rotation_with_a_long_retention_fits_the_annotations() -> None:
    """Hourly, 1 day's grace, 14 days' retention: 24 keys waiting for revocation and 336
    disabled versions waiting for destruction at any time."""
    state = RotationState(
        rotation_id="20260301t000000-abcdef",
        rotation_time=T0,
        current_key_id=str(uuid.uuid4()),
        revocations=tuple(
            Revocation(str(1000 + i), T0 + timedelta(hours=i), key_id=str(uuid.uuid4()))
            for i in range(24)
        ),
        destructions=tuple(
            Destruction(str(600 + i), T0 + timedelta(days=14, hours=i)) for i in range(336)
        ),
        last_rotated=T0,
        aliases={"current": "1024", "previous": "1023"},
    )
    notes = state.annotations(_declared())
    assert annotations_size(notes) < ANNOTATIONS_MAX_BYTES - 1024
    assert state.room(_declared()) > 1024


def test_compact_times_read_back_never_earlier() -> None:
    revocation = Revocation("3", T0, key_id="k")
    destruction = Destruction("2", T0)
    meta = SecretMetadata(
        name="s",
        annotations=RotationState(
            revocations=(revocation,), destructions=(destruction,)
        ).annotations({}),
    )
    read = RotationState.read(meta)
    assert read.revocations[0].after == T0  # exact: a grace of 0 revokes at once
    assert read.destructions[0].after >= T0
    assert read.destructions[0].after - T0 < timedelta(seconds=1)
    assert json.loads(meta.annotations[AnnotationKey.DESTRUCTIONS]) == [
        ["2", "2026-03-01T00:00:01Z"]
    ]


def test_state_written_in_the_older_long_form_is_still_read() -> None:
    notes = {
        AnnotationKey.REVOCATIONS: json.dumps(
            [{"after": T0.isoformat(), "version": "1", "key_id": "k"}]
        ),
        AnnotationKey.DESTRUCTIONS: json.dumps([{"after": T0.isoformat(), "version": "2"}]),
    }
    state = RotationState.read(SecretMetadata(name="s", annotations=notes))
    assert state.revocations == (Revocation("1", T0, key_id="k"),)
    assert state.destructions == (Destruction("2", T0),)


def test_a_rotation_that_could_not_be_recorded_is_refused_before_minting(world: World) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    key = world.current_key()
    world.fill_state(room_left=600)
    created = world.sandbox.calls["POST /api-keys"]

    with pytest.raises(RotationStateFullError) as caught:
        world.rotator.handle(world.rotate_event())

    assert not caught.value.retryable
    assert caught.value.log_fields["rotation_backlog"] is True
    assert "less than 16384" in str(caught.value)
    assert world.sandbox.calls["POST /api-keys"] == created  # nothing minted, nothing orphaned
    assert world.current_key() == key
    world.assert_consistent()


def test_old_keys_that_keep_failing_to_be_revoked_raise_the_backlog_alert(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.declare(grace="1m")
    world.rotator.handle(world.rotate_event())
    world.sandbox.faults.fail_next("DELETE /api-keys/{id}", times=10_000, mode="error_500")
    with caplog.at_level(logging.ERROR, logger="instantly_guard"):
        for _ in range(4):
            with contextlib.suppress(InstantlyError):  # the revocation after it fails
                world.rotator.rotate(MANAGED, world.manual())
            world.clock.advance(timedelta(minutes=2))
        assert isinstance(world.rotator.sweep()[MANAGED], InstantlyError)

    alerts = [r for r in caplog.records if getattr(r, "fields", {}).get("rotation_backlog")]
    assert alerts, "no ERROR with rotation_backlog for old keys piling up"
    assert {r.levelno for r in alerts} == {logging.ERROR}
    assert alerts[-1].fields["revocations_overdue"] == 4
    world.sandbox.faults.clear()
    world.rotator.sweep()
    assert not RotationState.read(world.store.inner.get(MANAGED)).revocations
    world.assert_consistent()
