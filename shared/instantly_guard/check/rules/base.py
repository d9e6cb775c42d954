"""What a rule is, and the decorator that turns a small check function into one.

A check function receives the snapshot and the policy and returns an `Outcome`: the failures it
found (one per offending resource) and a one-line summary of what it looked at. `Rule.__call__`
turns that into `Finding`s: one failed finding per failure, or a single passed (or skipped) one.
So each rule stays a pure function `Snapshot, Policy -> list[Finding]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from instantly_guard.check.model import FileLocation, Finding, Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.detections.text import plural

__all__ = ["CheckFunction", "Failure", "Outcome", "Rule", "plural", "rule"]


@dataclass(frozen=True, slots=True)
class Failure:
    """One thing wrong. `fix` overrides the rule's generic fix when a specific one helps."""

    evidence: str
    subject: str | None = None
    location: FileLocation | None = None
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check function found. `skip` (a reason) means the rule could not be evaluated."""

    failures: list[Failure] = field(default_factory=list)
    checked: str = ""
    skip: str | None = None


CheckFunction = Callable[[Snapshot, Policy], Outcome]


@dataclass(frozen=True, slots=True)
class Rule:
    """A checklist item: id, default severity, the section it reads, and how to fix a failure."""

    id: str
    title: str
    severity: Severity
    section: Section
    fix: str
    help: str
    check: CheckFunction

    def __call__(self, snapshot: Snapshot, policy: Policy) -> list[Finding]:
        outcome = self.check(snapshot, policy)
        if outcome.skip is not None:
            return [self.finding(passed=False, evidence=outcome.skip, skipped=True)]
        if not outcome.failures:
            return [self.finding(passed=True, evidence=outcome.checked)]
        return [
            self.finding(
                passed=False,
                evidence=failure.evidence,
                fix=failure.fix,
                subject=failure.subject,
                location=failure.location,
            )
            for failure in outcome.failures
        ]

    def finding(
        self,
        *,
        passed: bool,
        evidence: str,
        fix: str | None = None,
        subject: str | None = None,
        location: FileLocation | None = None,
        skipped: bool = False,
    ) -> Finding:
        return Finding(
            rule_id=self.id,
            title=self.title,
            severity=self.severity,
            passed=passed,
            evidence=evidence,
            fix=fix or self.fix,
            subject=subject,
            location=location,
            skipped=skipped,
        )


def rule(
    rule_id: str,
    *,
    title: str,
    severity: Severity,
    section: Section,
    fix: str,
    help: str,
) -> Callable[[CheckFunction], Rule]:
    """Declare a rule: `@rule("keys.max-age", title=..., ...)` above its check function."""

    def wrap(function: CheckFunction) -> Rule:
        return Rule(rule_id, title, severity, section, fix, help, function)

    return wrap
