"""Plain-data builders for the check's rule tests (no HTTP, no git)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from instantly_guard.check import (
    ApiKeyInfo,
    AuditEvent,
    Finding,
    MemberInfo,
    Policy,
    Rule,
    Snapshot,
    WebhookInfo,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def snapshot(**sections: Any) -> Snapshot:
    return Snapshot(taken_at=NOW, **sections)


def key(name: str, *scopes: str, age_days: float = 1, key_id: str | None = None) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key_id or f"id-{name.replace('/', '-')}",
        name=name,
        scopes=tuple(scopes),
        created=days_ago(age_days),
    )


def managed(secret: str, *scopes: str, age_days: float = 1) -> ApiKeyInfo:
    return key(f"instantly-guard/{secret}/r{int(age_days)}", *scopes, age_days=age_days)


def webhook(
    hook_id: str = "w1",
    url: str = "https://hooks.example.com/instantly",
    headers: tuple[str, ...] | None = ("x-webhook-secret",),
    status: int | None = 1,
) -> WebhookInfo:
    return WebhookInfo(
        id=hook_id,
        target_url=url,
        name=f"hook {hook_id}",
        event_type="reply_received",
        header_names=headers,
        status=status,
    )


def member(
    email: str, role: str = "editor", accepted: bool = True, age_days: float = 30
) -> MemberInfo:
    return MemberInfo(
        id=f"m-{email.split('@', maxsplit=1)[0]}",
        email=email,
        role=role,
        accepted=accepted,
        created=days_ago(age_days),
    )


def event(
    activity_type: int,
    *,
    age_days: float = 1,
    event_id: str | None = None,
    from_api: bool = True,
    api_key_id: str | None = None,
    user_id: str | None = "u1",
    user_name: str | None = "Jane Doe",
    ip: str = "203.0.113.7",
    **metadata: Any,
) -> AuditEvent:
    return AuditEvent(
        id=event_id or f"e-{activity_type}-{age_days}-{api_key_id}",
        timestamp=days_ago(age_days),
        activity_type=activity_type,
        from_api=from_api,
        api_key_id=api_key_id,
        user_id=user_id,
        user_name=user_name,
        ip_address=ip,
        metadata=MappingProxyType(metadata),
    )


def run(rule: Rule, snap: Snapshot, policy: Policy | None = None) -> list[Finding]:
    return rule(snap, policy or Policy())


def failed(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.failed]
