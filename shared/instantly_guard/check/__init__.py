"""`instantly-guard check`: the security checklist of an Instantly workspace and a repository.

    from instantly_guard.check import Policy, run_check, log_findings
    report = run_check(client, Policy(), repo=Path("."))     # client: a read-only InstantlyClient
    log_findings(report, logger)                              # a structured WARNING per problem

Modules: `model` (Snapshot, Finding, Report), `policy` (Policy, TOML), `collect` (the workspace
through InstantlyClient, per-section degradation, the scopes it needs), `gitrepo` (git +
detect-secrets), `rules/` (one module per area, each rule a pure function), `engine` (evaluate,
exit code, log_findings, run_check), `report/` (table, json, sarif).
"""

from instantly_guard.check.collect import REQUIRED_SCOPES, collect_workspace, scope_advice
from instantly_guard.check.engine import (
    DEFAULT_FAIL_ON,
    evaluate,
    exit_code,
    failing,
    log_findings,
    run_check,
)
from instantly_guard.check.model import (
    ApiKeyInfo,
    AuditEvent,
    BlockEntryInfo,
    CommittedSecret,
    EnvFile,
    FileLocation,
    Finding,
    MemberInfo,
    Report,
    RepoSnapshot,
    Section,
    SectionError,
    Severity,
    Snapshot,
    WebhookInfo,
)
from instantly_guard.check.policy import Environment, Policy
from instantly_guard.check.rules import (
    ALL_RULES,
    REPOSITORY_RULE_IDS,
    RULES_BY_ID,
    WORKSPACE_RULE_IDS,
    Rule,
)

__all__ = [
    "ALL_RULES",
    "DEFAULT_FAIL_ON",
    "REPOSITORY_RULE_IDS",
    "REQUIRED_SCOPES",
    "RULES_BY_ID",
    "WORKSPACE_RULE_IDS",
    "ApiKeyInfo",
    "AuditEvent",
    "BlockEntryInfo",
    "CommittedSecret",
    "EnvFile",
    "Environment",
    "FileLocation",
    "Finding",
    "MemberInfo",
    "Policy",
    "RepoSnapshot",
    "Report",
    "Rule",
    "Section",
    "SectionError",
    "Severity",
    "Snapshot",
    "WebhookInfo",
    "collect_workspace",
    "evaluate",
    "exit_code",
    "failing",
    "log_findings",
    "run_check",
    "scope_advice",
]
