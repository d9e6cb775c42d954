"""Named least-privilege profiles: the operations a kind of key performs, and the scopes that
follow from them.

Each profile lists operations, never scopes: its scopes are `minimal_scopes(operations)`, so they
stay exactly right when the scope table is regenerated. Scopes in API 2.0.0:

Keys this project mints for itself
- `audit_exporter`      audit_logs:read
- `key_rotation_admin`  api_keys:create, api_keys:delete, api_keys:read  (CRITICAL: can mint keys)
- `webhook_enrichment`  campaigns:read, leads:read, webhook_events:read
- `webhook_reconciler`  webhook_events:read
- `webhook_reconciler_resume`  webhook_events:read, webhooks:update
- `posture_check`       api_keys:read, audit_logs:read, block_list_entries:read,
                        workspace_members:read, workspaces:read  (`GET /webhooks` lists no scope)

Seed profiles a team uses for its own integrations
- `read_only_analytics` accounts:read, campaigns:read, inbox_placement_analytics:read,
                        inbox_placement_reports:read, subsequences:read
- `lead_import`         campaigns:read, lead_lists:create, lead_lists:read, leads:create,
                        leads:read
- `campaign_launcher`   accounts:read, campaigns:create, campaigns:read, campaigns:update,
                        leads:create
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from instantly_guard.errors import ConfigError
from instantly_guard.scopes.operations import minimal_scopes
from instantly_guard.scopes.risk import Risk, risk_level
from instantly_guard.scopes.scope import Scope, format_scopes


@dataclass(frozen=True, slots=True)
class Profile:
    """A named key purpose: `operations` it performs and the least `scopes` that allow them."""

    name: str
    purpose: str
    operations: tuple[str, ...]
    scopes: frozenset[Scope]

    @property
    def scope_strings(self) -> tuple[str, ...]:
        """Sorted scope strings, as `POST /api-keys` takes them."""
        return tuple(sorted(str(scope) for scope in self.scopes))

    @property
    def risk(self) -> Risk:
        return risk_level(self.scopes)

    def __str__(self) -> str:
        return f"{self.name} ({format_scopes(self.scopes)})"


def _profile(name: str, purpose: str, *operations: str) -> Profile:
    return Profile(name, purpose, operations, minimal_scopes(operations))


_ALL = (
    _profile(
        "audit_exporter",
        "Pages through the audit log and ships every entry to Cloud Logging.",
        "GET /audit-logs",
    ),
    _profile(
        "key_rotation_admin",
        "Mints, lists and revokes keys for rotation. It can mint a key with any scope, so it is "
        "CRITICAL by nature: keep it only in the admin secret, readable by the rotation function "
        "alone.",
        "POST /api-keys",
        "GET /api-keys",
        "DELETE /api-keys/{id}",
    ),
    _profile(
        "webhook_enrichment",
        "Adds context to received webhook events. Deliveries carry lead_email, campaign_id and "
        "campaign_name but no lead id, so the lead is found with POST /leads/list (a read, "
        "despite the POST) and read with GET /leads/{id}; the campaign is read by id; the "
        "delivery history (GET /webhook-events) lets a consumer reconcile missed events. It "
        "lists webhooks (no scope needed) to map a delivery to its webhook. Nothing is written.",
        "GET /webhooks",
        "GET /webhook-events",
        "GET /webhook-events/{id}",
        "POST /leads/list",
        "GET /leads/{id}",
        "GET /campaigns/{id}",
    ),
    _profile(
        "webhook_reconciler",
        "Reads Instantly's delivery log for our webhooks to republish events it failed to "
        "deliver (the reconcile function). It lists webhooks (no scope needed) to find ours.",
        "GET /webhooks",
        "GET /webhook-events",
        "GET /webhook-events/{id}",
    ),
    _profile(
        "webhook_reconciler_resume",
        "The reconciler with RECONCILE_RESUME=true: also resumes a webhook Instantly disabled "
        "after failed deliveries, once the receiver answers its health probe.",
        "GET /webhooks",
        "GET /webhook-events",
        "GET /webhook-events/{id}",
        "POST /webhooks/{id}/resume",
    ),
    _profile(
        "posture_check",
        "Reads what `instantly-guard check` inspects: keys, webhooks, members, block list, the "
        "workspace and the audit trail. Read-only. GET /webhooks lists no scope in the document, "
        "so no webhooks scope is included.",
        "GET /api-keys",
        "GET /webhooks",
        "GET /workspace-members",
        "GET /block-lists-entries",
        "GET /workspaces/current",
        "GET /audit-logs",
    ),
    _profile(
        "read_only_analytics",
        "Dashboards: campaign, subsequence, account and warm-up analytics and inbox placement "
        "results. Several analytics endpoints list no scope; the rest need only reads.",
        "GET /campaigns",
        "GET /campaigns/{id}",
        "GET /campaigns/analytics",
        "GET /campaigns/analytics/overview",
        "GET /campaigns/analytics/daily",
        "GET /campaigns/analytics/steps",
        "GET /campaigns/count-launched",
        "GET /subsequences/analytics",
        "GET /accounts",
        "GET /accounts/analytics/daily",
        "POST /accounts/warmup-analytics",
        "GET /inbox-placement-analytics",
        "GET /inbox-placement-reports",
    ),
    _profile(
        "lead_import",
        "Loads leads from a CRM into lists or campaigns: finds the target, creates a list when "
        "needed, checks for existing leads (POST /leads/list), adds leads. Never deletes.",
        "GET /campaigns",
        "GET /lead-lists",
        "POST /lead-lists",
        "POST /leads/list",
        "POST /leads",
        "POST /leads/add",
    ),
    _profile(
        "campaign_launcher",
        "Builds and launches campaigns: picks sending accounts, creates and edits a campaign, "
        "adds its leads, activates or pauses it (both need update) and watches its sending "
        "status. Never deletes.",
        "GET /accounts",
        "POST /campaigns",
        "GET /campaigns",
        "GET /campaigns/{id}",
        "PATCH /campaigns/{id}",
        "POST /leads/add",
        "POST /campaigns/{id}/activate",
        "POST /campaigns/{id}/pause",
        "GET /campaigns/{id}/sending-status",
    ),
)

PROFILES: Final[Mapping[str, Profile]] = MappingProxyType({p.name: p for p in _ALL})
"""Profile name -> Profile, in the order of the module docstring."""


def get_profile(name: str) -> Profile:
    """The profile called `name`; `ConfigError` listing the known names otherwise."""
    try:
        return PROFILES[name]
    except KeyError as exc:
        known = ", ".join(PROFILES)
        raise ConfigError(f"unknown scope profile {name!r}; known profiles: {known}") from exc
