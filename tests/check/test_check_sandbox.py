"""The check against the sandbox over real HTTP: the demo workspace trips every workspace rule,
a clean workspace built through the API trips none, and a narrow key degrades per section."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from instantly_guard import scopes
from instantly_guard.check import (
    REQUIRED_SCOPES,
    WORKSPACE_RULE_IDS,
    Policy,
    Report,
    run_check,
)
from instantly_guard.check.managed import ManagedKeys
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_sandbox import Sandbox
from instantly_sandbox import seed as demo_seed

POSTURE_SCOPES = scopes.PROFILES["posture_check"].scope_strings
CLEAN_HOOK_SECRET = "clean-workspace-secret-0123456789abcdef"  # pragma: allowlist secret


def client_for(sandbox: Sandbox, key: str) -> InstantlyClient:
    return InstantlyClient(
        StaticKey(key), sandbox.base_url, rate_limiter=RateLimiter(1000, 60000), max_retries=0
    )


def check(sandbox: Sandbox, key: str, policy: Policy) -> Report:
    with client_for(sandbox, key) as client:
        return run_check(client, policy)


@pytest.fixture
def demo() -> Iterator[Sandbox]:
    with Sandbox(seed="demo") as sandbox:
        yield sandbox


DEMO_POLICY = Policy.from_mapping(demo_seed.DEMO_POLICY)


def test_the_check_needs_exactly_the_posture_check_profile() -> None:
    assert REQUIRED_SCOPES == POSTURE_SCOPES
    assert all(s.endswith(":read") for s in REQUIRED_SCOPES)


def test_every_workspace_rule_fails_on_the_demo_workspace(demo: Sandbox) -> None:
    reader = demo.add_key("posture-check", POSTURE_SCOPES)
    # No managed secret records the seeded managed-looking key: a leftover.
    with client_for(demo, reader.key) as client:
        report = run_check(client, DEMO_POLICY, managed=ManagedKeys(frozenset(), frozenset()))
    assert {f.rule_id for f in report.failed} == WORKSPACE_RULE_IDS
    assert not [f for f in report.findings if f.skipped]
    assert report.workspace_name == demo_seed.WORKSPACE_NAME

    evidence = {
        f.rule_id: [x.evidence for x in report.findings if x.rule_id == f.rule_id]
        for f in report.failed
    }
    assert any("'bi-readonly'" in e for e in evidence["keys.all-resource-scope"])
    assert any("'legacy-zapier'" in e for e in evidence["keys.max-age"])
    assert any("'ops-key-manager'" in e for e in evidence["keys.multiple-key-creators"])
    assert not any(demo_seed.KEY_MANAGED in e for e in evidence["keys.unmanaged"])
    assert any(demo_seed.KEY_MANAGED in e for e in evidence["keys.leftover"])
    assert any("hooks.zapier.com" in e for e in evidence["webhooks.host-not-allowed"])
    assert any(demo_seed.HOOK_HTTP in e for e in evidence["webhooks.plain-http"])
    assert any(demo_seed.HOOK_DISABLED in e for e in evidence["webhooks.disabled"])
    assert sorted(evidence["blocklist.missing-domain"]) == [
        "competitor domain rival-two.example is not on the block list",
        "internal domain acme.example is not on the block list",
    ]
    key_changes = evidence["audit.key-change-outside-rotation"]
    assert len(key_changes) == 2
    assert all("unmanaged key 'admin'" in e for e in key_changes)
    # No member address appears in clear anywhere in the report.
    text = str([f.as_dict() for f in report.findings])
    assert demo_seed.MEMBER_OUTSIDE not in text
    assert demo_seed.MEMBER_PENDING not in text


def test_a_key_without_some_scopes_degrades_per_section(demo: Sandbox) -> None:
    narrow = demo.add_key("keys-only", ["api_keys:read"])
    report = check(demo, narrow.key, DEMO_POLICY)
    by_status: dict[str, set[str]] = {}
    for finding in report.findings:
        if finding.rule_id != "keys.leftover":  # skipped without the managed secrets
            by_status.setdefault(finding.status, set()).add(finding.rule_id.split(".")[0])
    assert by_status["skip"] == {"members", "blocklist", "audit"}
    assert "keys" in by_status["fail"]
    assert "webhooks" in by_status["fail"]  # GET /webhooks needs no scope
    audit = next(f for f in report.findings if f.rule_id == "audit.totp-disabled")
    assert "lacks audit_logs:read" in audit.evidence
    assert "it holds api_keys:read" in audit.evidence
    assert ",".join(POSTURE_SCOPES) in audit.fix
    assert report.workspace_name is None  # workspaces:read is missing too; not fatal


def build_clean_workspace(sandbox: Sandbox) -> str:
    """Turn the empty seed into a workspace that satisfies DEMO_POLICY; return the check key."""
    admin = sandbox.keys["admin"].key
    with client_for(sandbox, admin) as client:
        client.create_webhook(
            target_hook_url="https://hooks.acme.example/instantly/replies",
            event_type="reply_received",
            name="crm-replies",
            headers={"x-webhook-secret": CLEAN_HOOK_SECRET},
        )
        for domain in ("acme.example", "rival-one.example", "rival-two.example"):
            client.create_block_list_entry(domain)
    # Least-privilege keys under managed names (as rotation would have minted them).
    reader = sandbox.add_key("instantly-guard/posture-check/r1", POSTURE_SCOPES)
    key_admin = sandbox.add_key(
        "instantly-guard/key-admin/r1", scopes.PROFILES["key_rotation_admin"].scope_strings
    )
    # The bootstrap all:all key is revoked by the managed key-admin key: a rotation-style delete.
    with client_for(sandbox, key_admin.key) as client:
        client.delete_api_key(sandbox.keys["admin"].id)
    return reader.key


def test_a_clean_workspace_triggers_no_rule() -> None:
    # Clean includes an Instantly that masks header values from a read-only key (when it does
    # not, webhooks.header-readable fails whatever the workspace does: test_check_header_readable).
    with Sandbox(seed="empty", webhook_header_read="masked") as sandbox:
        reader = build_clean_workspace(sandbox)
        # The managed secrets, as read from the store, record both managed keys.
        ids = frozenset(k.id for k in sandbox.state.api_keys.values())
        with client_for(sandbox, reader) as client:
            report = run_check(client, DEMO_POLICY, managed=ManagedKeys(frozenset(), ids))
    assert [f for f in report.findings if not f.passed] == []
    assert {f.rule_id for f in report.findings} == WORKSPACE_RULE_IDS
