"""Every rule of the check, one module per area. Each rule is a pure function
`Snapshot, Policy -> list[Finding]` (see `base.Rule`)."""

from __future__ import annotations

from types import MappingProxyType

from instantly_guard.check.rules import audit, blocklist, keys, members, repository, webhooks
from instantly_guard.check.rules.base import Failure, Outcome, Rule, rule

ALL_RULES: tuple[Rule, ...] = (
    *keys.RULES,
    *webhooks.RULES,
    *members.RULES,
    *blocklist.RULES,
    *audit.RULES,
    *repository.RULES,
)
"""In report order: workspace areas first, the local repository last."""

RULES_BY_ID = MappingProxyType({r.id: r for r in ALL_RULES})

WORKSPACE_RULE_IDS: frozenset[str] = frozenset(r.id for r in ALL_RULES if r.section.is_workspace)
REPOSITORY_RULE_IDS: frozenset[str] = frozenset(
    r.id for r in ALL_RULES if not r.section.is_workspace
)

__all__ = [
    "ALL_RULES",
    "REPOSITORY_RULE_IDS",
    "RULES_BY_ID",
    "WORKSPACE_RULE_IDS",
    "Failure",
    "Outcome",
    "Rule",
    "rule",
]
