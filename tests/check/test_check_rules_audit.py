from __future__ import annotations

from tests.check.check_fixtures import event, failed, key, managed, run, snapshot

from instantly_guard.check import Policy
from instantly_guard.check.rules import audit


def test_repeated_mfa_failures_for_one_user_fail() -> None:
    events = tuple(event(29, age_days=0.1 * i, event_id=f"e{i}") for i in range(3))
    found = failed(run(audit.mfa_failures, snapshot(audit=events)))
    assert len(found) == 1
    assert "3 failed MFA challenges for Jane Doe" in found[0].evidence


def test_mfa_failures_below_threshold_or_outside_window_pass() -> None:
    events = (
        event(29, age_days=0.5, event_id="a"),
        event(29, age_days=0.6, event_id="b"),
        event(29, age_days=30, event_id="old"),
    )
    assert failed(run(audit.mfa_failures, snapshot(audit=events))) == []
    assert failed(run(audit.mfa_failures, snapshot(audit=events), Policy(mfa_failure_threshold=2)))


def test_mfa_lockout_fails_on_its_own() -> None:
    found = failed(run(audit.mfa_failures, snapshot(audit=(event(30),))))
    assert "locked" in found[0].evidence


def test_user_names_that_are_addresses_are_hashed() -> None:
    events = (event(30, user_name="jane@example.com"),)
    found = failed(run(audit.mfa_failures, snapshot(audit=events)))
    assert "jane@example.com" not in found[0].evidence


def test_totp_disabled_fails() -> None:
    found = failed(run(audit.totp_disabled, snapshot(audit=(event(26),))))
    assert [f.subject for f in found] == ["audit-log/e-26-1-None"]


def test_key_created_in_the_dashboard_is_outside_rotation() -> None:
    found = failed(
        run(
            audit.key_change_outside_rotation, snapshot(keys=(), audit=(event(37, from_api=False),))
        )
    )
    assert "in the dashboard" in found[0].evidence


def test_key_created_by_an_unmanaged_key_is_outside_rotation() -> None:
    admin = key("admin", "all:all", key_id="k-admin")
    snap = snapshot(keys=(admin,), audit=(event(37, api_key_id="k-admin", name="zapier"),))
    found = failed(run(audit.key_change_outside_rotation, snap))
    assert "'zapier' created" in found[0].evidence
    assert "unmanaged key 'admin'" in found[0].evidence


def test_changes_by_the_managed_admin_key_are_rotation() -> None:
    rotation_admin = managed(
        "instantly-admin", "api_keys:create", "api_keys:read", "api_keys:delete"
    )
    snap = snapshot(
        keys=(rotation_admin,),
        audit=(event(37, api_key_id=rotation_admin.id), event(38, api_key_id=rotation_admin.id)),
    )
    assert failed(run(audit.key_change_outside_rotation, snap)) == []


def test_a_trusted_hand_made_admin_key_is_listed_in_the_policy() -> None:
    admin = key("bootstrap-admin", "api_keys:create", key_id="k-boot")
    snap = snapshot(keys=(admin,), audit=(event(37, api_key_id="k-boot"),))
    assert failed(run(audit.key_change_outside_rotation, snap))
    assert not failed(
        run(audit.key_change_outside_rotation, snap, Policy(rotation_keys=("bootstrap-admin",)))
    )
    assert not failed(
        run(audit.key_change_outside_rotation, snap, Policy(rotation_keys=("k-boot",)))
    )


def test_a_deleted_actor_is_named_from_the_audit_metadata() -> None:
    # The admin key rotated itself: its old version (deleted) created the new one.
    events = (
        event(
            37,
            api_key_id="k-old-admin",
            age_days=2,
            name="instantly-guard/admin/r2",
            key_id="k-new",
        ),
        event(
            38,
            api_key_id="k-new",
            age_days=1.9,
            name="instantly-guard/admin/r1",
            key_id="k-old-admin",
        ),
    )
    new_admin = key("instantly-guard/admin/r2", "api_keys:create", key_id="k-new")
    assert (
        failed(run(audit.key_change_outside_rotation, snapshot(keys=(new_admin,), audit=events)))
        == []
    )


def test_an_unknown_deleted_actor_is_outside_rotation() -> None:
    snap = snapshot(keys=(), audit=(event(38, api_key_id="k-gone"),))
    found = failed(run(audit.key_change_outside_rotation, snap))
    assert "no longer exists" in found[0].evidence


def test_an_actor_is_not_said_to_be_gone_when_the_keys_could_not_be_listed() -> None:
    snap = snapshot(keys=None, audit=(event(37, api_key_id="k-admin"),))
    found = failed(run(audit.key_change_outside_rotation, snap))
    assert "no longer exists" not in found[0].evidence
    assert "cannot list API keys" in found[0].evidence


def test_audit_rules_pass_a_quiet_trail() -> None:
    for rule in audit.RULES:
        assert [f.status for f in run(rule, snapshot(keys=(), audit=(event(1),)))] == ["pass"]


def test_a_hand_made_admin_key_recorded_by_a_managed_secret_mints_rotation_keys() -> None:
    admin = key("admin", "all:all", key_id="k-admin")
    events = (
        event(37, api_key_id="k-admin", name="instantly-guard/audit-key/r1", key_id="k-new"),
        event(38, api_key_id="k-admin", key_id="k-old"),  # a revoked key; no name in the entry
        event(37, api_key_id="k-admin", name="zapier", key_id="k-zap"),  # not a rotation's
    )
    snap = snapshot(
        keys=(admin,),
        audit=events,
        rotation_admin_ids=frozenset({"k-admin"}),
        managed_key_ids=frozenset({"k-admin", "k-new", "k-old"}),
    )
    found = failed(run(audit.key_change_outside_rotation, snap))
    assert [f.evidence.split(" created")[0] for f in found] == ["API key 'zapier'"]
    # Without the store's ids, the same trail is three findings: the rule cannot tell.
    bare = snapshot(keys=(admin,), audit=events)
    assert len(failed(run(audit.key_change_outside_rotation, bare))) == 3


def test_managed_key_ids_are_read_from_the_secrets(tmp_path) -> None:
    from instantly_guard.check.managed import read_managed_keys
    from instantly_guard.rotation.model import Kind, ManagedConfig, RotationState
    from instantly_guard.secrets.local import LocalSecretStore

    store = LocalSecretStore(tmp_path)
    for name, admin, key_id in (("admin", None, "k-admin"), ("audit", "admin", "k-audit")):
        labels, notes = ManagedConfig.declare(
            kind=Kind.API_KEY, scopes=("audit_logs:read",), admin_secret=admin
        )
        meta = store.create_secret(name, labels=labels, annotations=notes)
        state = RotationState.read(meta).evolve(current_key_id=key_id)
        store.update(name, aliases={}, annotations=state.annotations(notes), etag=meta.etag)
    store.create_secret("unmanaged", labels={}, annotations={})
    keys = read_managed_keys(store)
    assert keys.admin_ids == {"k-admin"}
    assert keys.key_ids == {"k-admin", "k-audit"}
