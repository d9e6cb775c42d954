"""The in-memory workspace: every resource the sandbox serves, as typed records.

Records hold the fields of their OpenAPI schema (same names) plus, where noted, sandbox-only
bookkeeping that never reaches the wire. `to_json()` gives the response shape. All access from the
HTTP threads goes through `Workspace.lock`; tests reading `sb.state` between calls need no lock.
"""

from __future__ import annotations

import base64
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from instantly_sandbox.audit import AuditLogStore, ListingOrder
from instantly_sandbox.delivery_log import DeliveryLogOptions
from instantly_sandbox.ids import Uuid7Factory, iso, iso_ms, to_ms, uuid7_ms

MASK_KEEP = 4


def mask_key(key: str) -> str:
    """The value list and delete answers carry in `key`: the first 4 characters, then `*`."""
    return key[:MASK_KEEP] + "*" * max(len(key) - MASK_KEEP, 8)


def new_key_string() -> str:
    """A fresh API key string (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(32)


def real_key_string() -> str:
    """A fresh key in the real format: base64 of `<UUIDv4>:<12 alphanumerics>` (68 chars)."""
    alphabet = string.ascii_letters + string.digits
    tail = "".join(secrets.choice(alphabet) for _ in range(12))
    return base64.b64encode(f"{uuid.uuid4()}:{tail}".encode()).decode()


@dataclass
class ApiKeyRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    key: str
    organization_id: str
    timestamp_created: str
    timestamp_updated: str

    def to_json(self, *, reveal: bool = False) -> dict[str, Any]:
        """The `APIKey` body; the key string only when `reveal` (the create response)."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "key": self.key if reveal else mask_key(self.key),
            "organization_id": self.organization_id,
            "timestamp_created": self.timestamp_created,
            "timestamp_updated": self.timestamp_updated,
        }


HeaderView = Literal["raw", "masked"]
HEADER_VIEWS: tuple[str, ...] = get_args(HeaderView)


def mask_header_value(value: str) -> str:
    """How a masked header value reads: its first four characters, then eight `*`."""
    return value[:4] + "*" * 8


@dataclass
class WebhookRecord:
    """`failures` (consecutive failed deliveries) is sandbox bookkeeping, not on the wire."""

    id: str
    organization: str
    target_hook_url: str
    event_type: str | None
    timestamp_created: str
    name: str | None = None
    campaign: str | None = None
    custom_interest_value: float | None = None
    headers: dict[str, str] | None = None
    status: int = 1
    timestamp_error: str | None = None
    failures: int = 0

    @property
    def disabled(self) -> bool:
        return self.status == -1

    def to_json(self, *, masked_headers: bool = False) -> dict[str, Any]:
        """The wire form; `masked_headers` shows every header value masked (a sandbox variant:
        whether Instantly echoes header values is not documented)."""
        headers = dict(self.headers) if self.headers is not None else None
        if headers is not None and masked_headers:
            headers = {name: mask_header_value(value) for name, value in headers.items()}
        return {
            "id": self.id,
            "organization": self.organization,
            "campaign": self.campaign,
            "name": self.name,
            "target_hook_url": self.target_hook_url,
            "event_type": self.event_type,
            "custom_interest_value": self.custom_interest_value,
            "headers": headers,
            "timestamp_created": self.timestamp_created,
            "status": self.status,
            "timestamp_error": self.timestamp_error,
        }


@dataclass
class MemberRecord:
    id: str
    email: str
    user_id: str
    role: str
    timestamp_created: str
    workspace_id: str
    accepted: bool
    first_name: str = ""
    last_name: str = ""
    nickname: str | None = None
    issuer_id: str | None = None
    permissions: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "user_id": self.user_id,
            "user_email": self.email if self.accepted else None,
            "nickname": self.nickname,
            "name": {"first": self.first_name, "last": self.last_name},
            "role": self.role,
            "timestamp_created": self.timestamp_created,
            "workspace_id": self.workspace_id,
            "accepted": self.accepted,
            "issuer_id": self.issuer_id,
            "permissions": list(self.permissions) if self.permissions is not None else None,
        }


@dataclass
class BlockListRecord:
    id: str
    timestamp_created: str
    organization_id: str
    bl_value: str
    is_domain: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp_created": self.timestamp_created,
            "organization_id": self.organization_id,
            "bl_value": self.bl_value,
            "is_domain": self.is_domain,
        }


@dataclass
class CampaignRecord:
    id: str
    name: str
    status: int
    timestamp_created: str
    timestamp_updated: str
    organization: str
    timezone: str = "America/Chicago"
    daily_limit: int = 50

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "campaign_schedule": {
                "schedules": [
                    {
                        "name": "Working hours",
                        "timing": {"from": "09:00", "to": "17:00"},
                        "days": {"1": True, "2": True, "3": True, "4": True, "5": True},
                        "timezone": self.timezone,
                    }
                ]
            },
            "timestamp_created": self.timestamp_created,
            "timestamp_updated": self.timestamp_updated,
            "daily_limit": self.daily_limit,
            "stop_on_reply": True,
            "open_tracking": False,
            "link_tracking": False,
            "organization": self.organization,
        }


@dataclass
class AccountRecord:
    email: str
    first_name: str
    last_name: str
    timestamp_created: str
    timestamp_updated: str
    organization: str
    provider_code: int = 2
    status: int = 1
    warmup_status: int = 1
    daily_limit: int = 30

    @property
    def cursor(self) -> str:
        """Accounts page by `timestamp_created&email`, as the document says."""
        return f"{self.timestamp_created}&{self.email}"

    def to_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "timestamp_created": self.timestamp_created,
            "timestamp_updated": self.timestamp_updated,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "organization": self.organization,
            "status": self.status,
            "warmup_status": self.warmup_status,
            "provider_code": self.provider_code,
            "setup_pending": False,
            "is_managed_account": False,
            "daily_limit": self.daily_limit,
        }


@dataclass
class WebhookEventRecord:
    """A delivery attempt. `webhook_id` is sandbox bookkeeping, not in the schema; how retries
    and payloads are shown depends on `DeliveryLogOptions` (see `instantly_sandbox.delivery_log`)."""

    id: str
    timestamp_created: str
    organization_id: str
    webhook_id: str
    webhook_url: str
    payload: dict[str, Any]
    success: bool
    status_code: int | None
    error_message: str | None
    response_time_ms: int | None
    retry_count: int = 0
    will_retry: bool = False
    retry_group_id: str | None = None
    retry_successful: bool | None = None
    timestamp_next_retry: str | None = None

    def to_json(
        self, options: DeliveryLogOptions | None = None, *, detail: bool = False
    ) -> dict[str, Any]:
        """The `WebhookEvent` body; `detail` for `GET /webhook-events/{id}`."""
        options = options or DeliveryLogOptions()
        lead_email = self.payload.get("lead_email")
        body: dict[str, Any] = {
            "id": self.id,
            "timestamp_created": options.stamp(self.timestamp_created),
            "timestamp_created_date": self.timestamp_created[:10],
            "organization_id": self.organization_id,
            "success": self.success,
            "retry_count": self.retry_count,
            "will_retry": self.will_retry,
            "webhook_url": self.webhook_url,
            "status_code": self.status_code,
            "error_message": self.error_message,
            "timestamp_next_retry": options.stamp(self.timestamp_next_retry),
            "retry_group_id": self.retry_group_id,
            "retry_successful": self.retry_successful,
            "lead_email": lead_email if isinstance(lead_email, str) else None,
            "response_time_ms": self.response_time_ms,
        }
        if options.payload == "listed" or (options.payload == "detail_only" and detail):
            body["payload"] = self.payload
        return body


@dataclass
class WorkspaceRecord:
    """`paid` (an active paid plan; without one every call answers 402) is sandbox-only."""

    id: str
    name: str
    owner: str
    timestamp_created: str
    timestamp_updated: str
    plan_id: str | None = "pid_hg_v1"
    paid: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp_created": self.timestamp_created,
            "timestamp_updated": self.timestamp_updated,
            "owner": self.owner,
            "name": self.name,
            "plan_id": self.plan_id,
            "plan_id_bundle": None,
            "add_unsub_to_block": False,
            "default_opportunity_value": None,
            "org_logo_url": None,
            "scheduled_for_removal_at": None,
        }


@dataclass
class Workspace:
    """One Instantly workspace. Collections are dicts keyed by id (accounts: by email)."""

    clock: Callable[[], datetime]
    ids: Uuid7Factory
    workspace: WorkspaceRecord
    audit_logs: AuditLogStore
    api_keys: dict[str, ApiKeyRecord] = field(default_factory=dict)
    webhooks: dict[str, WebhookRecord] = field(default_factory=dict)
    members: dict[str, MemberRecord] = field(default_factory=dict)
    block_list: dict[str, BlockListRecord] = field(default_factory=dict)
    campaigns: dict[str, CampaignRecord] = field(default_factory=dict)
    accounts: dict[str, AccountRecord] = field(default_factory=dict)
    webhook_events: dict[str, WebhookEventRecord] = field(default_factory=dict)
    delivery_log: DeliveryLogOptions = field(default_factory=DeliveryLogOptions)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _secrets: dict[str, str] = field(default_factory=dict)  # key string -> key id
    # How webhook header values read back: on GET (`read`) and in the POST/PATCH answer (`echo`).
    webhook_header_read: HeaderView = "raw"
    webhook_header_echo: HeaderView = "raw"
    # What keys created from now on look like (variants.key_shape).
    key_shape: str = "sandbox"
    # Every `next_starting_after` answered (variants.unknown_cursor judges the others).
    issued_cursors: set[str] = field(default_factory=set)

    @classmethod
    def create(
        cls,
        *,
        clock: Callable[[], datetime],
        name: str,
        created: datetime,
        listing_order: ListingOrder = "asc",
        shuffle_key: bytes | None = None,
    ) -> Workspace:
        ids = Uuid7Factory()
        stamp = iso(created)
        workspace_id = ids.new(created)
        record = WorkspaceRecord(
            id=workspace_id,
            name=name,
            owner=ids.new(created),
            timestamp_created=stamp,
            timestamp_updated=stamp,
        )
        audit = AuditLogStore(
            workspace_id, ids, clock, order=listing_order, shuffle_key=shuffle_key
        )
        return cls(clock=clock, ids=ids, workspace=record, audit_logs=audit)

    @property
    def id(self) -> str:
        return self.workspace.id

    def now(self) -> datetime:
        return self.clock()

    def new_id(self, at: datetime | None = None) -> tuple[str, str]:
        """A fresh UUIDv7 and the matching ISO timestamp, for a record created at `at` (now)."""
        new = self.ids.new(at or self.clock())
        return new, iso_ms(uuid7_ms(new))

    # --- API keys ------------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        at: datetime | None = None,
        key: str | None = None,
    ) -> ApiKeyRecord:
        """Add a key (no audit entry; the HTTP route records one)."""
        key_id, stamp = self.new_id(at)
        real = self.key_shape == "real"
        if real:
            key_id = str(uuid.uuid4())
        record = ApiKeyRecord(
            id=key_id,
            name=name,
            scopes=tuple(scopes),
            key=key or (real_key_string() if real else new_key_string()),
            organization_id=self.id,
            timestamp_created=stamp,
            timestamp_updated=stamp,
        )
        with self.lock:
            if record.key in self._secrets:
                raise ValueError("duplicate key string")
            self.api_keys[record.id] = record
            self._secrets[record.key] = record.id
        return record

    def delete_key(self, key_id: str) -> ApiKeyRecord | None:
        with self.lock:
            record = self.api_keys.pop(key_id, None)
            if record is not None:
                self._secrets.pop(record.key, None)
            return record

    def key_for(self, key_string: str) -> ApiKeyRecord | None:
        """The live key with this string, or None (unknown or deleted)."""
        with self.lock:
            key_id = self._secrets.get(key_string)
            return self.api_keys.get(key_id) if key_id else None

    def keys_named(self, name: str) -> list[ApiKeyRecord]:
        with self.lock:
            return [key for key in self.api_keys.values() if key.name == name]

    # --- webhooks ------------------------------------------------------------------------------

    def webhook_named(self, name: str) -> WebhookRecord:
        """The webhook called `name` (seeded names are in `instantly_sandbox.seed`)."""
        with self.lock:
            for hook in self.webhooks.values():
                if hook.name == name:
                    return hook
        raise KeyError(name)

    def disable_webhook(self, webhook_id: str) -> WebhookRecord:
        """Instantly switching a failing webhook off: status -1, `timestamp_error`, audit 20."""
        with self.lock:
            hook = self.webhooks[webhook_id]
            now = self.clock()
            hook.status = -1
            hook.timestamp_error = iso(now)
            self.audit_logs.add(
                20,
                at=now,
                webhook_id=hook.id,
                from_api=False,
                ip_address="127.0.0.1",
                audit_metadata={
                    "target_hook_url": hook.target_hook_url,
                    "reason": "delivery failures",
                },
            )
            return hook

    # --- members -------------------------------------------------------------------------------

    def add_member(
        self,
        email: str,
        role: str,
        *,
        accepted: bool = True,
        first_name: str = "",
        last_name: str = "",
        at: datetime | None = None,
        issuer_id: str | None = None,
        user_id: str | None = None,
    ) -> MemberRecord:
        member_id, stamp = self.new_id(at)
        user_id = user_id or self.ids.new(at or self.clock())
        record = MemberRecord(
            id=member_id,
            email=email,
            user_id=user_id,
            role=role,
            timestamp_created=stamp,
            workspace_id=self.id,
            accepted=accepted,
            first_name=first_name,
            last_name=last_name,
            issuer_id=issuer_id,
        )
        with self.lock:
            self.members[record.id] = record
        return record

    # --- block list, campaigns, accounts --------------------------------------------------------

    def add_block_list_entry(self, value: str, *, at: datetime | None = None) -> BlockListRecord:
        entry_id, stamp = self.new_id(at)
        record = BlockListRecord(
            id=entry_id,
            timestamp_created=stamp,
            organization_id=self.id,
            bl_value=value,
            is_domain="@" not in value,
        )
        with self.lock:
            self.block_list[record.id] = record
        return record

    def add_campaign(self, name: str, status: int, *, at: datetime | None = None) -> CampaignRecord:
        campaign_id, stamp = self.new_id(at)
        record = CampaignRecord(
            id=campaign_id,
            name=name,
            status=status,
            timestamp_created=stamp,
            timestamp_updated=stamp,
            organization=self.id,
        )
        with self.lock:
            self.campaigns[record.id] = record
        return record

    def add_account(
        self,
        email: str,
        first_name: str,
        last_name: str,
        *,
        provider_code: int = 2,
        at: datetime | None = None,
    ) -> AccountRecord:
        stamp = iso_ms(to_ms(at or self.clock()))
        record = AccountRecord(
            email=email,
            first_name=first_name,
            last_name=last_name,
            timestamp_created=stamp,
            timestamp_updated=stamp,
            organization=self.id,
            provider_code=provider_code,
        )
        with self.lock:
            self.accounts[record.email] = record
        return record
