"""Pydantic models of the Instantly API v2 resources this project uses.

Field names and types follow the schemas of the OpenAPI document (`APIKey`, `AuditLog`,
`Webhook`, `WorkspaceMember`, `BlockListEntry`, `Workspace`, `Campaign`, `Account`). These models
sit at an untrusted edge, where one odd field must not break a whole page (and with it every
rotation, check or export run), so they read tolerantly:

- extra fields are kept (`extra="allow"`), never rejected;
- documented enums (activity types, roles, event types) are plain `int`/`str`, not closed enums;
- a field the document requires but this project never reads is optional (`ApiKey.key`,
  `organization_id`, `timestamp_updated` of a key);
- a field the document cannot promise for every entry accepts null (`AuditLog.ip_address` and
  `from_api`: system events have no client address and are neither from the API nor not).

`tests/unit/test_client_models.py` holds the list of these relaxations and checks every other
field against the document. An audit entry that still does not fit is not dropped: the client
reads it as a `MalformedAuditLog` (`instantly.salvage`).

Secret material: `CreatedApiKey.key` is a `Secret`; whatever a listing carries in `ApiKey.key`
(masked, or the full key if Instantly ever sent it) is wrapped in a `Secret` too; `Webhook.headers`
(which hold the webhook's shared secret) are left out of `repr()`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from instantly_guard.secret import Secret


def _to_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value:
        return Secret(value)
    # Never echo the value: the error message may end up in a log.
    raise ValueError("expected a non-empty string")


def _to_listed_key(value: object) -> Secret | None:
    # Never used, so never refused: masked, full, empty, null, absent or not even a string.
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value:
        return Secret(value)
    return None


SecretValue = Annotated[
    Secret,
    PlainValidator(_to_secret),
    # Dumping a model (to JSON, to a log) must not reveal the value; reveal() is the only way out.
    PlainSerializer(repr, return_type=str),
]
"""A string field wrapped in `Secret` on validation; serialises as `Secret('***')`."""

ListedKeyValue = Annotated[
    Secret | None,
    PlainValidator(_to_listed_key),
    PlainSerializer(lambda value: None if value is None else repr(value), return_type=str | None),
]
"""What a listing carries in `key`: a `Secret` when it is a non-empty string, None otherwise."""


class InstantlyModel(BaseModel):
    """Base of every Instantly resource: unknown fields are kept, not rejected."""

    # `cache_strings="keys"`: pydantic caches short JSON strings process-wide by default, which
    # for answers of unique ids and timestamps only fills the cache (about 1.3 MB that an export
    # holds for good) without a hit; field names repeat, values do not.
    model_config = ConfigDict(extra="allow", frozen=True, cache_strings="keys")


class ApiKeyBase(InstantlyModel):
    """The fields an API key has in every answer (schema `APIKey`), without the key string.

    Required: what rotation and the check read (`id`, `name`, `scopes`, `timestamp_created`).
    """

    id: str
    name: str
    scopes: list[str]
    timestamp_created: datetime
    organization_id: str | None = None
    timestamp_updated: datetime | None = None


class ApiKey(ApiKeyBase):
    """An API key as listed or deleted.

    `key` is whatever Instantly shows outside the create response: documented as required, seen
    masked, and it may be absent or null. Nothing here reads it: it is never needed to identify
    or revoke a key (the id is), and it cannot be trusted to authenticate anything. It is a
    `Secret` (or None) so that a listing that ever carried the full key cannot leak it.
    """

    key: ListedKeyValue = Field(default=None, repr=False)


class CreatedApiKey(ApiKeyBase):
    """The answer of `POST /api-keys`: the only time Instantly shows the key string.

    `key` is a `Secret`. Lose this object before storing `key.reveal()` and the key is orphaned.
    Deliberately not a subclass of `ApiKey`: its `key` has a different type and meaning.
    """

    key: SecretValue


class AuditLog(InstantlyModel):
    """One entry of the workspace's audit trail (schema `AuditLog`). Ids are UUIDv7, time-ordered.

    `ip_address` and `from_api` are required by the document but may be null here: an event
    Instantly's own systems record (a webhook disabled after failures) has neither.
    """

    id: str
    timestamp: datetime
    organization_id: str
    activity_type: int
    ip_address: str | None = None
    from_api: bool | None = None
    user_agent: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    api_key_id: str | None = None
    affected_count: int | float | None = None
    campaign_id: str | None = None
    webhook_id: str | None = None
    subsequence_id: str | None = None
    list_id: str | None = None
    # The schema says object (not nullable); FACTS.md lists it among the fields that may be null.
    audit_metadata: dict[str, Any] | None = None


class MalformedAuditLog(AuditLog):
    """An audit entry that did not match `AuditLog`, kept rather than dropped (`salvage.py`).

    The typed fields hold what could be read, with stand-ins where a needed one could not (an id
    derived from the entry's content, the time from its UUIDv7 id); `problems` says what did not
    fit (field and reason, never the value) and `substituted` which stand-ins were used; `raw` is
    the entry exactly as Instantly sent it, which is what gets exported.
    """

    problems: tuple[str, ...] = Field(default=(), exclude=True)
    substituted: dict[str, str] = Field(default_factory=dict, exclude=True)
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)


class Webhook(InstantlyModel):
    """A webhook subscription (schema `Webhook`). `status`: 1 active, -1 disabled after failures.

    `headers` holds the custom headers Instantly sends with each delivery: the webhook's only
    authentication, so the values are secrets. They are kept out of `repr()`; never log them.
    """

    id: str
    organization: str
    target_hook_url: str
    timestamp_created: datetime
    name: str | None = None
    campaign: str | None = None
    event_type: str | None = None
    custom_interest_value: int | float | None = None
    headers: dict[str, str] | None = Field(default=None, repr=False)
    status: int | None = None
    timestamp_error: datetime | None = None


class WebhookTestResult(InstantlyModel):
    """The answer of `POST /webhooks/{id}/test`: what the webhook's target said to a test
    delivery Instantly sent with the webhook's stored headers. Every field is optional in the
    document, so none is required here."""

    success: bool | None = None
    message: str | None = None
    response_time_ms: float | None = None
    status_code: int | None = None
    error: str | None = None


class WebhookEvent(InstantlyModel):
    """One delivery attempt from Instantly's delivery log (schema `WebhookEvent`).

    The document leaves much open (see docs/reconcile.md): `payload` is not required, retries
    may be separate records sharing `retry_group_id` or one record updated in place, and a
    timestamp may come without a zone (read as UTC by its users). `payload` holds the lead's
    data: never log it.
    """

    id: str
    timestamp_created: datetime
    success: bool
    will_retry: bool
    webhook_url: str
    # Never read: one odd value must not fail a whole page of the delivery log.
    organization_id: str | None = None
    retry_count: int | float | None = None
    timestamp_created_date: str | None = None
    payload: dict[str, Any] | None = Field(default=None, repr=False)
    status_code: int | float | None = None
    error_message: str | None = None
    timestamp_next_retry: datetime | None = None
    retry_group_id: str | None = None
    retry_successful: bool | None = None
    lead_email: str | None = Field(default=None, repr=False)
    response_time_ms: int | float | None = None


class MemberName(InstantlyModel):
    first: str | None = None
    last: str | None = None


class WorkspaceMember(InstantlyModel):
    """A member or pending invite of the workspace (schema `WorkspaceMember`).

    `role` is one of owner, admin, editor, view, client; `accepted` is false for a pending invite.
    """

    id: str
    email: str
    user_id: str
    role: str
    timestamp_created: datetime
    workspace_id: str
    accepted: bool
    user_email: str | None = None
    nickname: str | None = None
    name: MemberName | None = None
    issuer_id: str | None = None
    permissions: list[str] | None = None


class BlockListEntry(InstantlyModel):
    """A blocked email address or domain (schema `BlockListEntry`)."""

    id: str
    timestamp_created: datetime
    organization_id: str
    bl_value: str
    is_domain: bool


class Workspace(InstantlyModel):
    """The workspace the key belongs to, or acts on via `x-as-workspace` (schema `Workspace`)."""

    id: str
    timestamp_created: datetime
    timestamp_updated: datetime
    owner: str
    name: str
    scheduled_for_removal_at: datetime | None = None
    plan_id: str | None = None
    plan_id_bundle: str | None = None
    plan_id_leadfinder: str | None = None
    plan_id_crm: str | None = None
    plan_id_website_visitor: str | None = None
    plan_id_inbox_placement: str | None = None
    plan_id_verification: dict[str, Any] | None = None
    add_unsub_to_block: bool | None = None
    default_opportunity_value: int | float | None = None
    org_logo_url: str | None = None
    org_client_domain: str | None = None


class Campaign(InstantlyModel):
    """A campaign, reduced to the required fields of schema `Campaign` (the rest stay as extras)."""

    id: str
    name: str
    status: int | float
    campaign_schedule: dict[str, Any]
    timestamp_created: datetime
    timestamp_updated: datetime


class Account(InstantlyModel):
    """A sending account, reduced to the required fields of schema `Account`."""

    email: str
    timestamp_created: datetime
    timestamp_updated: datetime
    first_name: str
    last_name: str
    organization: str
    warmup_status: int | float
    provider_code: int | float
    setup_pending: bool
    is_managed_account: bool


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(InstantlyModel, Generic[ItemT]):
    """One page of a listing: `{"items": [...], "next_starting_after": "..."}`.

    A last page may still carry a cursor; an empty `items` is what ends a listing.
    """

    items: list[ItemT]
    next_starting_after: str | None = None
