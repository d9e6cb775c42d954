from __future__ import annotations

from tests.check.check_fixtures import failed, member, run, snapshot

from instantly_guard.check import Policy
from instantly_guard.check.rules import members
from instantly_guard.redaction import hash_email


def test_owners_and_admins_above_the_threshold_fail_once() -> None:
    team = (
        member("a@example.com", "owner"),
        member("b@example.com", "admin"),
        member("c@example.com", "admin"),
        member("d@example.com", "editor"),
    )
    assert failed(run(members.too_many_admins, snapshot(members=team))) == []
    found = failed(run(members.too_many_admins, snapshot(members=team), Policy(max_admins=2)))
    assert len(found) == 1
    assert "3 owners and admins, limit 2" in found[0].evidence


def test_evidence_never_holds_a_clear_address() -> None:
    team = tuple(member(f"person{i}@example.com", "admin") for i in range(5))
    found = failed(run(members.too_many_admins, snapshot(members=team)))
    assert "person0@example.com" not in found[0].evidence
    assert hash_email("person0@example.com") in found[0].evidence


def test_invitation_pending_longer_than_the_limit_fails() -> None:
    team = (
        member("old@example.com", accepted=False, age_days=30),
        member("new@example.com", accepted=False, age_days=3),
        member("done@example.com", accepted=True, age_days=300),
    )
    found = failed(run(members.stale_invitation, snapshot(members=team)))
    assert [f.subject for f in found] == ["member/m-old"]
    assert "30 days" in found[0].evidence


def test_members_outside_allowed_domains_are_masked() -> None:
    team = (
        member("a@example.com"),
        member("b@eu.example.com"),
        member("mallory@gmail.com"),
    )
    found = failed(
        run(
            members.outside_domain,
            snapshot(members=team),
            Policy(allowed_email_domains=("example.com",)),
        )
    )
    assert [f.subject for f in found] == ["member/m-mallory"]
    assert "mallory@gmail.com" not in found[0].evidence
    assert "@gmail.com" in found[0].evidence


def test_domain_rule_is_skipped_when_no_domain_is_configured() -> None:
    findings = run(members.outside_domain, snapshot(members=(member("x@y.com"),)))
    assert [f.status for f in findings] == ["skip"]
