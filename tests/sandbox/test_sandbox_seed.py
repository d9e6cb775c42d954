"""The seeded workspaces hold what their docstring promises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from instantly_sandbox import Sandbox
from instantly_sandbox import seed as demo

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_demo_workspace_plants_every_problem() -> None:
    sb = Sandbox(seed="demo", clock=lambda: NOW)
    ws = sb.state

    roles = sorted(member.role for member in ws.members.values())
    assert roles.count("owner") + roles.count("admin") == 4
    assert {"editor", "view", "client"} <= set(roles)
    pending = [m for m in ws.members.values() if not m.accepted]
    assert [m.email for m in pending] == [demo.MEMBER_PENDING]
    assert NOW - _at(pending[0].timestamp_created) > timedelta(days=30)
    assert any(m.email == demo.MEMBER_OUTSIDE for m in ws.members.values())

    keys = {key.name: key for key in ws.api_keys.values()}
    assert keys[demo.KEY_ADMIN].scopes == ("all:all",)
    assert NOW - _at(keys[demo.KEY_LEGACY].timestamp_created) > timedelta(days=90)
    assert "api_keys:create" in keys[demo.KEY_SECOND_CREATOR].scopes
    assert keys[demo.KEY_ALL_READ].scopes == ("all:read",)
    assert keys[demo.KEY_MANAGED].name.startswith("instantly-guard/")
    assert set(sb.keys) == set(keys)

    hooks = {hook.name: hook for hook in ws.webhooks.values()}
    assert hooks[demo.HOOK_NO_AUTH].headers is None
    assert hooks[demo.HOOK_GOOD].headers
    assert hooks[demo.HOOK_HTTP].target_hook_url.startswith("http://")
    assert hooks[demo.HOOK_DISABLED].status == -1

    blocked = {entry.bl_value for entry in ws.block_list.values()}
    assert blocked == set(demo.BLOCKED)
    assert not blocked & set(demo.MISSING_FROM_BLOCK_LIST)
    assert len(ws.campaigns) == 3
    assert len(ws.accounts) == 2

    types = [entry.activity_type for entry in ws.audit_logs.entries()]
    assert types.count(29) >= 3
    assert 30 in types
    assert 26 in types
    assert 37 in types
    assert 38 in types


def test_demo_policy_lists_what_the_planted_problems_break() -> None:
    assert demo.DOMAIN in demo.DEMO_POLICY["allowed_email_domains"]
    assert set(demo.MISSING_FROM_BLOCK_LIST) <= set(
        demo.DEMO_POLICY["internal_domains"] + demo.DEMO_POLICY["competitor_domains"]
    )


def test_empty_workspace_has_only_the_admin_key_and_owner() -> None:
    sb = Sandbox(seed="empty")
    ws = sb.state
    assert [key.name for key in ws.api_keys.values()] == ["admin"]
    assert [member.role for member in ws.members.values()] == ["owner"]
    assert not (ws.webhooks)
    assert not (ws.block_list)
    assert not (ws.campaigns)
    assert not (ws.accounts)
    assert len(ws.audit_logs) == 0


def test_seeded_timestamps_follow_the_clock() -> None:
    sb = Sandbox(seed="demo", clock=lambda: NOW)
    newest = max(_at(entry.timestamp) for entry in sb.state.audit_logs.entries())
    assert newest <= NOW
