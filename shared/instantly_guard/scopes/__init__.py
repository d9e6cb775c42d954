"""Instantly API key scopes: vocabulary, matching, least privilege and risk.

A scope is `resource:action`. The vocabulary and, for every operation ("METHOD /path" without
`/api/v2`, e.g. "GET /audit-logs"), the scopes it accepts are generated from Instantly's OpenAPI
document into `_generated.py` by `scripts/gen_scopes.py` (`make scopes`).

The matching rule: an operation needing `R:A` accepts `R:A`, `R:all`, `all:A` or `all:all`, and
nothing else. An operation that lists no scope accepts any valid key.

    parse_scopes("audit_logs:read, leads:all")           -> frozenset[Scope]
    grants(held, "campaigns:read")                       -> bool
    allows(held, "GET /audit-logs")                      -> bool
    missing_for(held, operations)                        -> {operation: accepted scopes}
    minimal_scopes(operations)                           -> frozenset[Scope]
    risk_level(held)                                     -> Risk
    PROFILES["posture_check"].scope_strings              -> ("api_keys:read", ...)
    probe_operation(held)                                -> "GET /api-keys"

Functions taking held scopes accept a comma/space-separated string or an iterable of strings and
`Scope` values; strings are parsed strictly (`ScopeParseError`). Unknown operations raise
`UnknownOperationError`. Both are `ConfigError`s.
"""

from instantly_guard.scopes.errors import ScopeParseError, UnknownOperationError
from instantly_guard.scopes.matching import accepted_by, grants
from instantly_guard.scopes.operations import (
    OPERATIONS,
    UNSCOPED_OPERATIONS,
    allows,
    minimal_scopes,
    missing_for,
    required_scope,
)
from instantly_guard.scopes.probe import FALLBACK_PROBE, PROBE_OPERATIONS, probe_operation
from instantly_guard.scopes.profiles import PROFILES, Profile, get_profile
from instantly_guard.scopes.risk import Risk, assess, risk_level, risk_reason, scope_risk
from instantly_guard.scopes.scope import (
    ACTIONS,
    ALL,
    KEY_SCOPES,
    OPERATION_ONLY_RESOURCES,
    RESOURCES,
    Scope,
    Scopes,
    format_scopes,
    parse_scope,
    parse_scopes,
)

__all__ = [
    "ACTIONS",
    "ALL",
    "FALLBACK_PROBE",
    "KEY_SCOPES",
    "OPERATIONS",
    "OPERATION_ONLY_RESOURCES",
    "PROBE_OPERATIONS",
    "PROFILES",
    "RESOURCES",
    "UNSCOPED_OPERATIONS",
    "Profile",
    "Risk",
    "Scope",
    "ScopeParseError",
    "Scopes",
    "UnknownOperationError",
    "accepted_by",
    "allows",
    "assess",
    "format_scopes",
    "get_profile",
    "grants",
    "minimal_scopes",
    "missing_for",
    "parse_scope",
    "parse_scopes",
    "probe_operation",
    "required_scope",
    "risk_level",
    "risk_reason",
    "scope_risk",
]
