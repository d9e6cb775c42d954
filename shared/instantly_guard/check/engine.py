"""Run the rules over a snapshot, decide the exit code, and log findings for scheduled runs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from instantly_guard.check.collect import collect_workspace
from instantly_guard.check.gitrepo import RepositoryUnreadableError, collect_repository
from instantly_guard.check.managed import ManagedKeys
from instantly_guard.check.model import Finding, Report, Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules import ALL_RULES, Rule

if TYPE_CHECKING:  # the client (pydantic models) is not loaded for a repository-only check
    from instantly_guard.instantly import InstantlyClient

DEFAULT_FAIL_ON = Severity.HIGH
"""`--fail-on` default: CI fails on high and critical findings, reports the rest."""


def evaluate(
    snapshot: Snapshot, policy: Policy, rules: Sequence[Rule] = ALL_RULES
) -> list[Finding]:
    """Every finding, in rule order.

    A rule whose section could not be read gives one skipped finding carrying the section's
    error (which scope is missing and how to get it); a section that was not asked for (no
    entry in `snapshot.errors`) gives nothing. Rules listed in `policy.disabled_rules` are left out.
    """
    findings: list[Finding] = []
    disabled = set(policy.disabled_rules)
    for rule in rules:
        if rule.id in disabled:
            continue
        if snapshot.has(rule.section):
            findings.extend(rule(snapshot, policy))
            continue
        error = snapshot.errors.get(rule.section)
        if error is not None:
            findings.append(
                rule.finding(passed=False, evidence=error.message, fix=error.fix, skipped=True)
            )
    return findings


def failing(findings: Iterable[Finding], threshold: Severity | None) -> list[Finding]:
    """The failed findings at or above `threshold` (None: never fail)."""
    if threshold is None:
        return []
    return [f for f in findings if f.failed and f.severity.rank >= threshold.rank]


def exit_code(
    findings: Iterable[Finding], threshold: Severity | None, *, fail_on_skipped: bool = False
) -> int:
    """0, or 1 when a failed finding reaches `threshold` (or, if asked, a rule was skipped)."""
    findings = list(findings)
    if failing(findings, threshold):
        return 1
    if fail_on_skipped and any(f.skipped for f in findings):
        return 1
    return 0


def log_findings(
    findings: Iterable[Finding] | Report, logger: logging.Logger, *, passed: bool = False
) -> int:
    """Log each failed or skipped finding as one structured WARNING (passed ones at DEBUG when
    `passed`); return how many warnings were logged.

    Meant for a scheduled run (the audit export with AUDIT_RUN_CHECK=true): each record carries
    `check_rule`, `check_severity`, `check_status`, `check_subject`, `check_evidence`, `check_fix`
    and, for a file, `check_path`/`check_line`, so a log-based metric or alert can filter on
    `jsonPayload.check_severity="critical"`. Evidence never holds a secret or a clear address.
    """
    items = findings.findings if isinstance(findings, Report) else findings
    warned = 0
    for finding in items:
        if finding.passed and not passed:
            continue
        fields: dict[str, object] = {
            "check_rule": finding.rule_id,
            "check_severity": str(finding.severity),
            "check_status": finding.status,
            "check_subject": finding.subject,
            "check_evidence": finding.evidence,
            "check_fix": finding.fix,
        }
        if finding.location is not None:
            fields["check_path"] = finding.location.path
            fields["check_line"] = finding.location.line
        level = logging.DEBUG if finding.passed else logging.WARNING
        logger.log(
            level,
            "check %s %s: %s",
            finding.status,
            finding.rule_id,
            finding.evidence,
            extra={"fields": fields, "labels": {"check_rule": finding.rule_id}},
        )
        warned += level == logging.WARNING
    return warned


def run_check(
    client: InstantlyClient | None,
    policy: Policy,
    *,
    repo: Path | None = None,
    now: datetime | None = None,
    managed: ManagedKeys | None = None,
) -> Report:
    """Read the workspace through `client` (None: skip the workspace) and the git repository at
    `repo` (None: skip it), then evaluate every rule. The one call the CLI and a scheduled run make.
    `managed`: the key ids the managed secrets record (`check.managed`), when the caller could
    read them, so the rotations' own key changes are recognised.
    """
    taken_at = now or datetime.now(UTC)
    snapshot = (
        collect_workspace(client, policy, now=taken_at)
        if client is not None
        else Snapshot(taken_at=taken_at)
    )
    if managed is not None:
        snapshot = dataclasses.replace(
            snapshot,
            rotation_admin_ids=managed.admin_ids,
            managed_key_ids=managed.key_ids,
            managed_webhook_ids=managed.webhook_ids,
            managed_read=True,
        )
    repository = None
    if repo is not None:
        errors = dict(snapshot.errors)
        try:
            repository = collect_repository(repo)
        except RepositoryUnreadableError as exc:
            errors[Section.REPOSITORY] = exc.error
        snapshot = dataclasses.replace(
            snapshot, repository=repository, errors=MappingProxyType(errors)
        )
    return Report(
        taken_at=taken_at,
        findings=tuple(evaluate(snapshot, policy)),
        target=client.base_url if client is not None else None,
        workspace_name=snapshot.workspace_name,
        repository=str(repository.root) if repository is not None else None,
    )
