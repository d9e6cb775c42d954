"""The seeded workspaces: "demo", with one of every problem the posture check looks for, and
"empty", a clean slate.

"empty": the workspace, its owner (a workspace always has one), and one key, `admin` (`all:all`).
Nothing else: no webhooks, block list, campaigns, accounts or audit entries.

"demo" (times relative to the sandbox clock; the email domain is `acme.example`):

Members
- owner `olivia@acme.example`; admins `alice@`, `bob@`, `carol@`: 4 owners + admins.
  PLANTED: more owners/admins than `max_admins` (3).
- editor `dave@`, view `erin@`, client `frank@acme.example`.
- PLANTED `gina@acme.example`: invitation pending (`accepted` false) for 45 days.
- PLANTED `sam.freelancer@gmail.com` (editor): outside the allowed email domain.

API keys (`KEY_*` names; every seeded key's string is in `sb.keys`)
- PLANTED `admin`: `all:all` (the key handed to the caller).
- PLANTED `legacy-zapier`: `campaigns:read, leads:read`, created 200 days ago (older than 90
  days, not managed by instantly-guard).
- PLANTED `ops-key-manager`: `api_keys:create, api_keys:read, api_keys:delete`: a second key
  able to create keys besides `admin`; created 5 days ago through the API outside rotation.
- PLANTED `bi-readonly`: `all:read` (an `all:*` scope).
- clean `instantly-guard/audit-export/r-seed`: `audit_logs:read`, 10 days old, created by a
  rotation (its name carries the managed prefix `instantly-guard`).

Webhooks (`HOOK_*` names)
- clean `crm-replies`: https://hooks.acme.example/..., `reply_received`, `x-webhook-secret`.
- PLANTED `zapier-interested`: no authentication header; host hooks.zapier.com is outside the
  allow list (`hooks.acme.example`).
- PLANTED `legacy-http`: an `http://` target (with a Basic Authorization header).
- PLANTED `bounce-sync`: disabled by Instantly after delivery failures (status -1); holds its
  secret header twice, as `X-Webhook-Secret` and `x-webhook-secret`.
- PLANTED `link-clicks`: `email_link_clicked`, host analytics.partner.example outside the allow
  list (has an auth header).
- PLANTED `replies-copy`: `all_events`, no header, aimed at crm-replies' URL: a webhook that is
  not ours (the policy's `managed_webhooks` names crm-replies) delivering to our receiver.

Block list: `rival-one.example`, `spam-trap.example` (domains), `ceo@rival-three.example`.
PLANTED: the internal domain `acme.example` and the competitor `rival-two.example` are missing.

Campaigns: "Q3 Outbound" (active), "Webinar follow-up" (paused), "Partner launch" (draft).
Accounts: `sales1@acme-mail.example` (Google), `sales2@acme-mail.example` (Microsoft).

Audit log
- PLANTED 5 x MFA challenge failed (29) for alice from 198.51.100.23 in the last 2 days, and
  1 x MFA failed too many times (30).
- PLANTED TOTP disabled (26) for bob, 3 days ago.
- PLANTED API key created (37) `ops-key-manager` 5 days ago and deleted (38) `temp-export-key`
  4 days ago, both through the API by the `admin` key, outside rotation.
- Routine: logins (1), a lead export (34), key created (37) `legacy-zapier` 200 days ago in the
  app, and the rotation of `instantly-guard/audit-export/*` 10 days ago (37 then 38).
Audit entries for keys carry `audit_metadata = {"id", "name", "scopes"}` of the key concerned.

`DEMO_POLICY` is a posture-check policy (plain data, `Policy.from_mapping`) under which every
planted problem is a finding and every "clean" item passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from instantly_sandbox.state import ApiKeyRecord, WebhookRecord, Workspace

SeedName = Literal["demo", "empty"]
SEEDS: tuple[str, ...] = ("demo", "empty")

DOMAIN = "acme.example"
WORKSPACE_NAME = "Acme Outbound"

KEY_ADMIN = "admin"
KEY_LEGACY = "legacy-zapier"
KEY_SECOND_CREATOR = "ops-key-manager"
KEY_ALL_READ = "bi-readonly"
KEY_MANAGED = "instantly-guard/audit-export/r-seed"
KEY_DELETED = "temp-export-key"  # exists only in the audit trail

HOOK_GOOD = "crm-replies"
HOOK_NO_AUTH = "zapier-interested"
HOOK_HTTP = "legacy-http"
HOOK_DISABLED = "bounce-sync"
HOOK_OUTSIDE_ALLOW_LIST = "link-clicks"
HOOK_FOREIGN = "replies-copy"  # someone else's webhook aimed at crm-replies' receiver
WEBHOOK_SECRET_HEADER = "x-webhook-secret"

MEMBER_OWNER = f"olivia@{DOMAIN}"
MEMBER_PENDING = f"gina@{DOMAIN}"
MEMBER_OUTSIDE = "sam.freelancer@gmail.com"

BLOCKED = ("rival-one.example", "spam-trap.example", "ceo@rival-three.example")
MISSING_FROM_BLOCK_LIST = (DOMAIN, "rival-two.example")

MFA_ATTACK_IP = "198.51.100.23"

DEMO_POLICY: Mapping[str, Any] = {
    "environment": "production",
    "managed_key_prefix": "instantly-guard",
    "key_max_age_days": 90,
    "max_key_creators": 1,
    "webhook_allowed_hosts": ["hooks.acme.example"],
    "managed_webhooks": [HOOK_GOOD],
    "max_admins": 3,
    "invitation_max_age_days": 30,
    "allowed_email_domains": [DOMAIN],
    "internal_domains": [DOMAIN],
    "competitor_domains": ["rival-one.example", "rival-two.example"],
    "audit_window_days": 7,
    "mfa_failure_threshold": 3,
}


@dataclass(frozen=True)
class SeededKey:
    """A key whose string the caller may use (the create response was "seen" at seeding)."""

    id: str
    key: str
    scopes: tuple[str, ...]

    @classmethod
    def of(cls, record: ApiKeyRecord) -> SeededKey:
        return cls(record.id, record.key, record.scopes)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "scopes": list(self.scopes)}


def new_workspace(
    seed: SeedName,
    *,
    clock: Callable[[], datetime],
    listing_order: Literal["asc", "desc", "random"] = "asc",
    shuffle_key: bytes | None = None,
) -> tuple[Workspace, dict[str, SeededKey]]:
    """A fresh workspace with `seed` applied, and the seeded keys by name."""
    if seed not in SEEDS:
        raise ValueError(f"unknown seed {seed!r}; one of {', '.join(SEEDS)}")
    now = clock()
    ws = Workspace.create(
        clock=clock,
        name=WORKSPACE_NAME,
        created=now - timedelta(days=400),
        listing_order=listing_order,
        shuffle_key=shuffle_key,
    )
    ws.add_member(
        MEMBER_OWNER,
        "owner",
        first_name="Olivia",
        last_name="Owner",
        at=now - timedelta(days=400),
        user_id=ws.workspace.owner,
    )
    admin = ws.create_key(KEY_ADMIN, ["all:all"], at=now - timedelta(days=30))
    keys = {KEY_ADMIN: SeededKey.of(admin)}
    if seed == "demo":
        keys.update(_seed_demo(ws, now, admin))
    return ws, keys


def _seed_demo(ws: Workspace, now: datetime, admin: ApiKeyRecord) -> dict[str, SeededKey]:
    def ago(**delta: float) -> datetime:
        return now - timedelta(**delta)

    owner = ws.workspace.owner
    people = [
        ("alice", "Alice", "Admin", "admin"),
        ("bob", "Bob", "Admin", "admin"),
        ("carol", "Carol", "Admin", "admin"),
        ("dave", "Dave", "Editor", "editor"),
        ("erin", "Erin", "Viewer", "view"),
        ("frank", "Frank", "Client", "client"),
    ]
    users = {}
    for index, (local, first, last, role) in enumerate(people):
        member = ws.add_member(
            f"{local}@{DOMAIN}",
            role,
            first_name=first,
            last_name=last,
            at=ago(days=300 - 20 * index),
            issuer_id=owner,
        )
        users[local] = member
    ws.add_member(MEMBER_PENDING, "editor", accepted=False, at=ago(days=45), issuer_id=owner)
    ws.add_member(
        MEMBER_OUTSIDE,
        "editor",
        first_name="Sam",
        last_name="Freelancer",
        at=ago(days=60),
        issuer_id=owner,
    )

    legacy = ws.create_key(KEY_LEGACY, ["campaigns:read", "leads:read"], at=ago(days=200))
    creator = ws.create_key(
        KEY_SECOND_CREATOR, ["api_keys:create", "api_keys:read", "api_keys:delete"], at=ago(days=5)
    )
    all_read = ws.create_key(KEY_ALL_READ, ["all:read"], at=ago(days=20))
    managed = ws.create_key(KEY_MANAGED, ["audit_logs:read"], at=ago(days=10))

    hooks = [
        (
            HOOK_GOOD,
            "https://hooks.acme.example/instantly/replies",
            "reply_received",
            {WEBHOOK_SECRET_HEADER: "s3ed-crm-replies-secret-0123456789abcdef"},
        ),
        (
            HOOK_NO_AUTH,
            "https://hooks.zapier.com/hooks/catch/1234567/abcdefg/",
            "lead_interested",
            None,
        ),
        (
            HOOK_HTTP,
            "http://legacy.acme.example/webhooks/instantly",
            "all_events",
            {"Authorization": "Basic bGVnYWN5Omh1bnRlcjI="},
        ),
        (
            HOOK_DISABLED,
            "https://old-crm.acme.example/hooks/bounces",
            "email_bounced",
            # Registered by a setup script as X-Webhook-Secret, then rotated case-sensitively.
            {
                WEBHOOK_SECRET_HEADER.title(): "s3ed-bounce-sync-secret-0123456789abcdef",
                WEBHOOK_SECRET_HEADER: "s3ed-bounce-sync-secret-0123456789abcdef",
            },
        ),
        (
            HOOK_OUTSIDE_ALLOW_LIST,
            "https://analytics.partner.example/instantly/clicks",
            "email_link_clicked",
            {"Authorization": "Bearer partner-token-0123456789abcdef"},
        ),
        (HOOK_FOREIGN, "https://hooks.acme.example/instantly/replies", "all_events", None),
    ]
    for index, (name, url, event_type, headers) in enumerate(hooks):
        hook_id, stamp = ws.new_id(ago(days=90 - 10 * index))
        ws.webhooks[hook_id] = WebhookRecord(
            id=hook_id,
            organization=ws.id,
            target_hook_url=url,
            event_type=event_type,
            timestamp_created=stamp,
            name=name,
            headers=headers,
        )
    disabled = ws.webhook_named(HOOK_DISABLED)
    disabled.status = -1
    disabled.failures = 12
    marked = ws.audit_logs.add(
        20,
        at=ago(days=6),
        webhook_id=disabled.id,
        audit_metadata={"target_hook_url": disabled.target_hook_url, "reason": "delivery failures"},
    )
    disabled.timestamp_error = marked.timestamp

    for value in BLOCKED:
        ws.add_block_list_entry(value, at=ago(days=100))
    for index, (name, status) in enumerate(
        (("Q3 Outbound", 1), ("Webinar follow-up", 2), ("Partner launch", 0))
    ):
        ws.add_campaign(name, status, at=ago(days=60 - 10 * index))
    ws.add_account("sales1@acme-mail.example", "Sam", "Sales", provider_code=2, at=ago(days=120))
    ws.add_account("sales2@acme-mail.example", "Sue", "Sales", provider_code=3, at=ago(days=110))

    keys = {KEY_ADMIN: admin, KEY_LEGACY: legacy, KEY_SECOND_CREATOR: creator, KEY_MANAGED: managed}
    _seed_audit(ws, ago, users, keys)
    return {record.name: SeededKey.of(record) for record in (legacy, creator, all_read, managed)}


def _seed_audit(
    ws: Workspace,
    ago: Callable[..., datetime],
    users: Mapping[str, Any],
    keys: Mapping[str, ApiKeyRecord],
) -> None:
    add = ws.audit_logs.add
    admin, legacy, creator, managed = (
        keys[name] for name in (KEY_ADMIN, KEY_LEGACY, KEY_SECOND_CREATOR, KEY_MANAGED)
    )
    browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"
    api_agent = "instantly-ops-script/1.4 python-httpx/0.27"
    alice, bob = users["alice"], users["bob"]

    def user(member: Any, ip: str = "203.0.113.10") -> dict[str, Any]:
        name = f"{member.first_name} {member.last_name}"
        return {
            "user_id": member.user_id,
            "user_name": name,
            "ip_address": ip,
            "user_agent": browser,
        }

    def key_meta(record: ApiKeyRecord) -> dict[str, Any]:
        return {"id": record.id, "name": record.name, "scopes": list(record.scopes)}

    via_admin = {
        "api_key_id": admin.id,
        "from_api": True,
        "ip_address": "192.0.2.44",
        "user_agent": api_agent,
    }
    add(37, at=ago(days=200), **user(users["dave"]), audit_metadata=key_meta(legacy))
    add(
        37,
        at=ago(days=10),
        **(via_admin | {"user_agent": "instantly-guard/0.1.0"}),
        audit_metadata=key_meta(managed),
    )
    add(
        38,
        at=ago(days=10) + timedelta(minutes=30),
        **(via_admin | {"user_agent": "instantly-guard/0.1.0"}),
        audit_metadata={
            "id": ws.ids.new(ago(days=100)),
            "name": "instantly-guard/audit-export/r-0",
            "scopes": ["audit_logs:read"],
        },
    )
    add(37, at=ago(days=5), **via_admin, audit_metadata=key_meta(creator))
    add(
        38,
        at=ago(days=4),
        **via_admin,
        audit_metadata={
            "id": ws.ids.new(ago(days=8)),
            "name": KEY_DELETED,
            "scopes": ["leads:read"],
        },
    )
    add(26, at=ago(days=3), **user(bob))
    for index in range(5):
        add(29, at=ago(hours=40 - 6 * index), **user(alice, MFA_ATTACK_IP))
    add(30, at=ago(hours=15), **user(alice, MFA_ATTACK_IP))
    for index, member in enumerate((alice, bob, users["carol"])):
        add(1, at=ago(days=2, hours=index), **user(member))
    add(34, at=ago(days=1), **user(users["dave"]), affected_count=250)
