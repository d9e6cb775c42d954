"""The rotation protocol end to end against the sandbox, on both secret-store backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rotation_helpers import ADMIN, GRACE, MANAGED, PREFIX, World

from instantly_guard.errors import ConfigError
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.model import AnnotationKey, Kind, ManagedConfig, RotationState
from instantly_guard.rotation.results import Outcome
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import VersionState, VersionUnavailableError


def test_first_rotation_provisions_a_declared_secret_with_no_version(world: World) -> None:
    world.declare()
    result = world.rotator.handle(world.rotate_event())

    assert result.outcome is Outcome.ROTATED
    assert result.current_version == "1"
    (key,) = world.managed_keys()
    assert key.name == f"{PREFIX}/{MANAGED}/{result.rotation_id}"
    assert tuple(key.scopes) == ("audit_logs:read",)
    assert world.current_key() == world.latest_key()
    assert world.key_record(world.current_key()).id == key.id
    assert world.aliases() == {"current": "1"}
    assert world.annotations()[AnnotationKey.CURRENT_KEY_ID] == key.id
    world.assert_consistent()


def test_rotation_replaces_the_key_and_revokes_the_old_one_only_after_the_grace(
    world: World,
) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    old = world.current_key()

    result = world.rotator.handle(world.rotate_event())
    new = world.current_key()

    assert result.outcome is Outcome.ROTATED
    assert result.current_version == "2"
    assert new != old
    assert world.aliases() == {"current": "2", "previous": "1"}
    assert world.key_works(old)
    assert world.key_works(new)
    world.assert_consistent()

    world.clock.advance(GRACE - timedelta(seconds=1))
    world.rotator.sweep()
    assert world.key_works(old), "revoked before the grace ended"

    world.clock.advance(timedelta(seconds=2))
    swept = world.rotator.sweep()
    assert swept[MANAGED].revoked_versions == ["1"]  # type: ignore[union-attr]
    assert not world.key_works(old)
    assert world.key_works(new)
    assert world.aliases() == {"current": "2"}
    versions = {v.version: v.state for v in world.store.inner.list_versions(MANAGED)}
    assert versions == {"1": VersionState.DISABLED, "2": VersionState.ENABLED}
    with pytest.raises(VersionUnavailableError):
        world.store.inner.access(MANAGED, "1")
    assert len(world.managed_keys()) == 1
    world.assert_consistent()


def test_disabled_versions_are_destroyed_after_the_retention(world: World) -> None:
    world.declare(retention="2d")
    world.rotator.handle(world.rotate_event())
    world.rotator.handle(world.rotate_event())
    world.clock.advance(GRACE + timedelta(minutes=1))
    world.rotator.sweep()

    world.clock.advance(timedelta(days=1))
    world.rotator.sweep()
    assert world.store.inner.list_versions(MANAGED)[0].state is VersionState.DISABLED

    world.clock.advance(timedelta(days=1, minutes=1))
    result = world.rotator.sweep()[MANAGED]
    assert result.destroyed_versions == ["1"]  # type: ignore[union-attr]
    assert world.store.inner.list_versions(MANAGED)[0].state is VersionState.DESTROYED
    assert AnnotationKey.DESTRUCTIONS not in world.annotations()


def test_the_next_event_also_finishes_due_revocations(world: World) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    old = world.current_key()
    world.rotator.handle(world.rotate_event())
    world.clock.advance(GRACE * 2)

    result = world.rotator.handle(world.rotate_event())

    assert "1" in result.revoked_versions
    assert not world.key_works(old)
    world.assert_consistent()


def test_revoke_now_revokes_every_old_key_at_once(world: World) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    first = world.current_key()
    world.rotator.handle(world.rotate_event())
    second = world.current_key()

    result = world.rotator.rotate(MANAGED, world.manual(revoke_now=True))

    assert result.outcome is Outcome.ROTATED
    assert sorted(result.revoked_versions) == ["1", "2"]
    assert not world.key_works(first)
    assert not world.key_works(second)
    assert world.key_works(world.current_key())
    assert len(world.managed_keys()) == 1
    assert world.aliases() == {"current": "3"}
    world.assert_consistent()


def test_a_redelivered_event_after_success_does_nothing(world: World) -> None:
    world.declare()
    event = world.rotate_event()
    world.rotator.handle(event)
    keys = {k.id for k in world.managed_keys()}

    again = world.rotator.handle(event)

    assert again.outcome is Outcome.DUPLICATE
    assert {k.id for k in world.managed_keys()} == keys
    assert world.aliases() == {"current": "1"}


def test_a_late_duplicate_of_an_older_event_does_not_rotate_again(world: World) -> None:
    world.declare()
    early = world.rotate_event()
    world.rotator.handle(early)
    world.rotator.handle(world.rotate_event())
    versions = len(world.store.inner.list_versions(MANAGED))

    assert world.rotator.handle(early).outcome is Outcome.DUPLICATE
    assert len(world.store.inner.list_versions(MANAGED)) == versions


def test_the_admin_secret_rotates_itself(world: World) -> None:
    world.declare()
    world.rotator.handle(world.rotate_event())
    old_admin = world.current_key(ADMIN)

    result = world.rotator.handle(world.rotate_event(ADMIN))

    assert result.outcome is Outcome.ROTATED
    new_admin = world.current_key(ADMIN)
    assert new_admin != old_admin
    record = world.key_record(new_admin)
    assert record.name.startswith(f"{PREFIX}/{ADMIN}/")
    assert sorted(record.scopes) == ["api_keys:create", "api_keys:delete", "api_keys:read"]

    # The rotated admin key keeps rotating the others, and its predecessor is revoked on time.
    world.clock.advance(GRACE + timedelta(minutes=1))
    world.rotator.sweep()
    assert world.key_record(old_admin) is None
    assert world.rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED
    world.assert_consistent(ADMIN)
    world.assert_consistent()


def test_a_key_whose_scopes_allow_no_cheap_read_is_tested_by_its_scope_401(
    world: World,
) -> None:
    world.declare(scopes=("leads:create",))
    before = world.sandbox.calls["GET /api-keys"]
    assert world.rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED
    # one listing by the admin key (leftovers), one by the new key: answered 401 Invalid scope
    assert world.sandbox.calls["GET /api-keys"] - before == 2
    world.assert_consistent()


def test_the_admin_key_is_tested_with_a_call_its_scopes_allow(world: World) -> None:
    before = world.sandbox.calls["GET /api-keys"]
    world.rotator.handle(world.rotate_event(ADMIN))
    # one listing for leftovers of the rotation, one as the new key's test
    assert world.sandbox.calls["GET /api-keys"] - before == 2


def test_a_secret_without_our_label_is_ignored(world: World) -> None:
    world.store.inner.create_secret("someone-elses", labels={}, annotations={})
    result = world.rotator.handle(world.rotate_event("someone-elses"))
    assert result.outcome is Outcome.NOT_MANAGED
    assert world.sandbox.calls["POST /api-keys"] == 0


def test_a_badly_declared_secret_is_a_permanent_configuration_error(world: World) -> None:
    labels, notes = ManagedConfig.declare(kind=Kind.API_KEY, scopes=("audit_logs:read",))
    notes[AnnotationKey.SCOPES] = "audit_log:read"  # a typo
    notes[AnnotationKey.GRACE] = "soon"
    world.store.inner.create_secret("broken", labels=labels, annotations=notes)
    with pytest.raises(ConfigError, match="scopes") as info:
        world.rotator.handle(world.rotate_event("broken"))
    assert "grace" in str(info.value)


def test_a_missing_admin_key_fails_permanently_without_creating_anything(world: World) -> None:
    world.declare("orphan", admin="no-such-admin")
    with pytest.raises(RotationError, match="no-such-admin") as info:
        world.rotator.handle(world.rotate_event("orphan"))
    assert info.value.retryable is False
    assert world.sandbox.calls["POST /api-keys"] == 0
    state = RotationState.read(world.store.inner.get("orphan"))
    assert state.lease is None
    assert state.last_error


def test_the_admin_secret_cannot_provision_itself_from_nothing(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory("local")
    w.declare("lonely-admin", scopes=("api_keys:all",), admin=None)
    with pytest.raises(RotationError, match="secrets set lonely-admin"):
        w.rotator.handle(w.rotate_event("lonely-admin"))


def test_a_bootstrap_version_without_alias_is_adopted(world: World) -> None:
    """Terraform's write-only first version has no `current`: the admin key in it is used, and
    the secret's first rotation adopts it as `current` and replaces it like any other."""
    hand_made = world.sandbox.add_key("terraform bootstrap", ["api_keys:all"])
    world.declare("tf-admin", scopes=("api_keys:all",), admin=None)
    world.store.inner.add_version("tf-admin", Secret(hand_made.key))
    world.declare("tf-managed", admin="tf-admin")

    assert world.rotator.handle(world.rotate_event("tf-managed")).outcome is Outcome.ROTATED
    result = world.rotator.handle(world.rotate_event("tf-admin"))

    assert result.current_version == "2"
    assert world.aliases("tf-admin") == {"current": "2", "previous": "1"}
    assert world.key_works(world.current_key("tf-admin"))
    world.clock.advance(GRACE + timedelta(seconds=1))
    world.rotator.sweep()
    # Its id was never recorded, so the hand-made key is left for a person to delete (a warning
    # says so); its version is disabled like any other.
    assert world.store.inner.list_versions("tf-admin")[0].state is VersionState.DISABLED
