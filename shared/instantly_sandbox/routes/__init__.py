"""The API routes, one module per resource. `ROUTES` is everything the sandbox implements."""

from __future__ import annotations

from instantly_sandbox.api import Route
from instantly_sandbox.routes import (
    accounts,
    api_keys,
    audit_logs,
    block_list,
    campaigns,
    members,
    webhook_events,
    webhooks,
    workspace,
)

ROUTES: tuple[Route, ...] = (
    *api_keys.ROUTES,
    *audit_logs.ROUTES,
    *webhooks.ROUTES,
    *webhook_events.ROUTES,
    *members.ROUTES,
    *block_list.ROUTES,
    *workspace.ROUTES,
    *campaigns.ROUTES,
    *accounts.ROUTES,
)
