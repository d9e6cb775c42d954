"""Choosing a cheap, harmless call that proves a key works: the rotation's "test" step."""

from __future__ import annotations

from typing import Final

from instantly_guard.scopes.operations import OPERATIONS, allows
from instantly_guard.scopes.scope import Scopes, parse_scopes

PROBE_OPERATIONS: Final[tuple[str, ...]] = (
    "GET /api-keys",
    "GET /audit-logs",
    "GET /workspaces/current",
    "GET /workspace-members",
    "GET /block-lists-entries",
    "GET /webhook-events",
    "GET /campaigns",
    "GET /accounts",
    "GET /lead-lists",
    "GET /subsequences",
    "GET /emails",
    "GET /lead-labels",
    "GET /custom-tags",
    "GET /custom-tag-mappings",
    "GET /background-jobs",
    "GET /inbox-placement-tests",
    "GET /dfy-email-account-orders",
    "GET /workspace-group-members",
    "GET /workspace-billing/plan-details",
    "GET /crm-actions/phone-numbers",
)
"""Reads with no path or required query parameter, cheap with `?limit=1` where paged, each
needing a scope; tried in this order."""

FALLBACK_PROBE: Final = "GET /webhooks/event-types"
"""Lists no scope and returns static data: proves only that the key authenticates."""


def probe_operation(held: Scopes) -> str:
    """The first of `PROBE_OPERATIONS` that `held` allows, so a successful call proves both that
    the key authenticates and that one of its scopes is in force; `FALLBACK_PROBE` when none is
    allowed (a key with only write scopes cannot be exercised without side effects)."""
    have = parse_scopes(held)
    for operation in PROBE_OPERATIONS:
        if OPERATIONS[operation] and allows(have, operation):
            return operation
    return FALLBACK_PROBE
