from __future__ import annotations

from tests.check.check_fixtures import failed, key, managed, run, snapshot

from instantly_guard.check import Policy, Severity
from instantly_guard.check.policy import Environment
from instantly_guard.check.rules import keys


def test_all_read_scope_is_a_critical_failure_naming_the_key() -> None:
    snap = snapshot(keys=(key("analytics", "all:read"), key("ok", "campaigns:read")))
    findings = run(keys.all_resource_scope, snap)
    assert [f.subject for f in failed(findings)] == ["api-key/id-analytics"]
    assert findings[0].severity is Severity.CRITICAL
    assert "all:read" in findings[0].evidence
    assert "'analytics'" in findings[0].evidence


def test_all_all_is_left_to_the_full_access_rule() -> None:
    snap = snapshot(keys=(key("admin", "all:all"),))
    assert failed(run(keys.all_resource_scope, snap)) == []
    assert len(failed(run(keys.full_access, snap))) == 1


def test_all_all_is_tolerated_in_development() -> None:
    snap = snapshot(keys=(key("admin", "all:all"),))
    findings = run(keys.full_access, snap, Policy(environment=Environment.DEVELOPMENT))
    assert [f.status for f in findings] == ["pass"]
    assert "development" in findings[0].evidence


def test_key_older_than_max_age_fails_and_a_younger_one_passes() -> None:
    snap = snapshot(
        keys=(key("old", "leads:read", age_days=91), key("new", "leads:read", age_days=89))
    )
    found = failed(run(keys.max_age, snap))
    assert [f.subject for f in found] == ["api-key/id-old"]
    assert "91 days old" in found[0].evidence
    assert failed(run(keys.max_age, snap, Policy(key_max_age_days=120))) == []


def test_keys_not_following_the_rotation_naming_are_unmanaged() -> None:
    snap = snapshot(
        keys=(
            managed("audit-exporter", "audit_logs:read"),
            key("instantly-guard/only-two", "leads:read"),
            key("Zapier", "leads:read"),
        )
    )
    assert sorted(f.subject for f in failed(run(keys.unmanaged, snap))) == [
        "api-key/id-Zapier",
        "api-key/id-instantly-guard-only-two",
    ]


def test_managed_prefix_is_a_policy_option() -> None:
    snap = snapshot(keys=(key("acme-guard/exporter/2025", "audit_logs:read"),))
    assert failed(run(keys.unmanaged, snap)) != []
    assert failed(run(keys.unmanaged, snap, Policy(managed_key_prefix="acme-guard"))) == []


def test_is_managed_name() -> None:
    assert keys.is_managed_name("instantly-guard/admin/0193abc", "instantly-guard")
    assert not keys.is_managed_name("instantly-guard/admin", "instantly-guard")
    assert not keys.is_managed_name("x/instantly-guard/admin/1", "instantly-guard")
    assert not keys.is_managed_name("instantly-guardx/admin/1", "instantly-guard")


def test_two_keys_able_to_create_keys_is_one_high_failure() -> None:
    snap = snapshot(
        keys=(
            managed("admin", "api_keys:create", "api_keys:read", "api_keys:delete"),
            key("ops", "api_keys:all"),
            key("reader", "api_keys:read"),
        )
    )
    found = failed(run(keys.multiple_key_creators, snap))
    assert len(found) == 1
    assert found[0].severity is Severity.HIGH
    assert "2 keys can create keys" in found[0].evidence
    assert "reader" not in found[0].evidence


def test_one_key_admin_is_allowed() -> None:
    snap = snapshot(keys=(managed("admin", "api_keys:create"), key("r", "leads:read")))
    findings = run(keys.multiple_key_creators, snap)
    assert [f.status for f in findings] == ["pass"]


def test_all_create_counts_as_able_to_create_keys() -> None:
    snap = snapshot(keys=(key("a", "all:create"), key("b", "all:all")))
    assert failed(run(keys.multiple_key_creators, snap))


def test_every_key_rule_passes_an_empty_key_list() -> None:
    for rule in keys.RULES:
        assert [f.status for f in run(rule, snapshot(keys=(), managed_read=True))] == ["pass"], (
            rule.id
        )


def test_a_live_key_named_like_ours_that_no_managed_secret_records_fails() -> None:
    kept = managed("audit-export", "audit_logs:read")
    gone = managed("crm-sync", "leads:read")  # its secret was undeclared: the key lives on
    snap = snapshot(
        keys=(kept, gone, key("hand-made", "leads:read")),
        managed_key_ids=frozenset({kept.id}),
        managed_read=True,
    )
    found = failed(run(keys.leftover, snap))
    assert [f.subject for f in found] == [f"api-key/{gone.id}"]
    assert "no managed secret records it" in found[0].evidence


def test_the_leftover_rule_is_skipped_without_the_managed_secrets() -> None:
    snap = snapshot(keys=(managed("crm-sync", "leads:read"),))
    findings = run(keys.leftover, snap)
    assert [f.status for f in findings] == ["skip"]
    assert "GUARD_BACKEND" in findings[0].evidence
