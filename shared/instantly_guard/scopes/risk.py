"""How much harm a key can do with its scopes, if it leaks.

A scope set's risk is the highest risk of its scopes (an empty set is LOW: any valid key can
still call the operations that list no scope). Each scope is classified by the first rule that
matches:

CRITICAL: takes over or destroys the workspace, or mints a key that can
    - `all:all`, `all:create`, `all:update`, `all:delete`: writes to every resource, API keys
      included
    - `api_keys:create`, `api_keys:all`: can mint a new key with any scope, `all:all` included
    - `workspace_members:create|update|all`: can invite or promote anyone to `admin`
    - `workspaces:delete`, `workspaces:all`: can schedule the workspace for removal
HIGH: reads everything, destroys data, or redirects or spends
    - `all:read`: reads every resource (leads, emails, accounts, key metadata)
    - any `R:delete` or `R:all` (which includes delete): removes data irreversibly
    - `api_keys:delete`, `api_keys:update`: revokes the keys every integration runs on
    - `webhooks:create|update`: points the event stream, which carries lead data, at any URL
    - `emails:create`: sends mail from the workspace's accounts, and forwards any email to anyone
    - `workspaces:update`: workspace settings, owner change, white-label domain
    - `workspace_group_members:create`: links a sub-workspace to an admin workspace
    - `dfy_email_account_orders:create`: places paid orders
MEDIUM: any other `create` or `update` on one resource
LOW: `read` on one resource
"""

from __future__ import annotations

from enum import IntEnum

from instantly_guard.scopes.scope import ALL, Scope, Scopes, parse_scope, parse_scopes


class Risk(IntEnum):
    """Ordered: `max()` of risks is the worst; compare with `>=` for a threshold."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()


_CRITICAL: dict[str, str] = {
    "api_keys:create": "can mint a new key with any scope, all:all included",
    "api_keys:all": "can mint a new key with any scope, all:all included",
    "workspace_members:create": "can invite anyone to the workspace as admin",
    "workspace_members:update": "can promote any member to admin",
    "workspace_members:all": "can invite or promote anyone to admin",
    "workspaces:delete": "can schedule the workspace for removal",
    "workspaces:all": "can schedule the workspace for removal",
}

_HIGH: dict[str, str] = {
    "api_keys:update": "manages API keys",
    "api_keys:delete": "revokes the keys every integration runs on",
    "webhooks:create": "can send the event stream, lead data included, to any URL",
    "webhooks:update": "can send the event stream, lead data included, to any URL",
    "emails:create": "sends mail from the workspace's accounts and forwards any email to anyone",
    "workspaces:update": "changes workspace settings, the owner and the white-label domain",
    "workspace_group_members:create": "links a sub-workspace to an admin workspace",
    "dfy_email_account_orders:create": "places paid orders",
}


def scope_risk(scope: Scope | str) -> Risk:
    """The risk of one scope (strings are parsed strictly)."""
    return _classify(_one(scope))[0]


def risk_reason(scope: Scope | str) -> str:
    """One sentence saying why `scope` has its risk level: evidence for a report."""
    return _classify(_one(scope))[1]


def risk_level(scopes: Scopes) -> Risk:
    """The risk of a set of scopes: the highest of its members, LOW when empty."""
    return max((_classify(scope)[0] for scope in parse_scopes(scopes)), default=Risk.LOW)


def assess(scopes: Scopes) -> list[tuple[Scope, Risk, str]]:
    """Every scope with its risk and reason, worst first, then by scope: a report's evidence."""
    rated = [(scope, *_classify(scope)) for scope in parse_scopes(scopes)]
    return sorted(rated, key=lambda item: (-item[1], item[0]))


def _classify(scope: Scope) -> tuple[Risk, str]:
    text = str(scope)
    if scope.resource == ALL:
        if scope.action == "read":
            return Risk.HIGH, "reads every resource in the workspace"
        return Risk.CRITICAL, "writes to every resource in the workspace, API keys included"
    if text in _CRITICAL:
        return Risk.CRITICAL, _CRITICAL[text]
    if text in _HIGH:
        return Risk.HIGH, _HIGH[text]
    if scope.action == ALL:
        return Risk.HIGH, f"every action on {scope.resource}, delete included"
    if scope.action == "delete":
        return Risk.HIGH, f"deletes {scope.resource} irreversibly"
    if scope.action == "read":
        return Risk.LOW, f"reads {scope.resource}"
    return Risk.MEDIUM, f"{scope.action}s {scope.resource}"


def _one(scope: Scope | str) -> Scope:
    return scope if isinstance(scope, Scope) else parse_scope(scope)
