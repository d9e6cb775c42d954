"""The check's data: what it reads (a `Snapshot`) and what it reports (`Finding`s).

Plain frozen dataclasses, independent of the HTTP client's pydantic models, so that every rule is a
pure function a test can feed by hand. A snapshot never holds a secret: webhooks keep only the
*names* of their custom headers, committed secrets only their detect-secrets hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from instantly_guard.detections import model as _detections

# Both live in the rule base now (the audit rules run there); the check keeps its names.
Severity = _detections.Severity
AuditEvent = _detections.Event
"""An audit entry the check read: the rule base's `Event` (audit rules run there)."""


class Section(StrEnum):
    """One part of the checklist, read with one call (or one scan) and failing independently."""

    KEYS = "keys"
    WEBHOOKS = "webhooks"
    MEMBERS = "members"
    BLOCKLIST = "blocklist"
    AUDIT = "audit"
    REPOSITORY = "repository"

    @property
    def is_workspace(self) -> bool:
        return self is not Section.REPOSITORY


@dataclass(frozen=True, slots=True)
class FileLocation:
    """Where in the repository a finding points (path relative to the repository root)."""

    path: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One item of the report.

    `passed` is True when the rule found nothing wrong. `skipped` is True when the rule could not
    be evaluated (a section the key may not read, a policy option not configured): then `passed` is
    False and `evidence` says why. `subject` names the resource a failure is about (e.g.
    `api-key/<id>`), `location` the file for repository findings.
    """

    rule_id: str
    title: str
    severity: Severity
    passed: bool
    evidence: str
    fix: str
    subject: str | None = None
    location: FileLocation | None = None
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return not self.passed and not self.skipped

    @property
    def status(self) -> str:
        """`pass`, `fail` or `skip`."""
        if self.skipped:
            return "skip"
        return "pass" if self.passed else "fail"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": str(self.severity),
            "status": self.status,
            "passed": self.passed,
            "skipped": self.skipped,
            "evidence": self.evidence,
            "fix": self.fix,
            "subject": self.subject,
            "location": (
                None
                if self.location is None
                else {"path": self.location.path, "line": self.location.line}
            ),
        }


# --- what the collectors read ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookInfo:
    """A webhook. `header_names` is None when Instantly reports no headers object at all; the
    header values are never kept."""

    id: str
    target_url: str
    name: str | None = None
    event_type: str | None = None
    header_names: tuple[str, ...] | None = None
    status: int | None = None
    error_since: datetime | None = None
    # Headers whose value the listing key read in full (not masked): `collect.header_readable`.
    readable_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberInfo:
    id: str
    email: str
    role: str
    accepted: bool = True
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class BlockEntryInfo:
    value: str
    is_domain: bool


@dataclass(frozen=True, slots=True)
class EnvFile:
    """A `.env`-style file in the repository: whether git tracks it and whether it is ignored."""

    path: str
    tracked: bool
    ignored: bool


@dataclass(frozen=True, slots=True)
class CommittedSecret:
    """A key-like string detect-secrets found in a tracked file. `hashed` is its SHA-1 from
    detect-secrets, never the value."""

    path: str
    line: int
    kind: str
    hashed: str


@dataclass(frozen=True, slots=True)
class RepoSnapshot:
    root: Path
    env_files: tuple[EnvFile, ...] = ()
    secrets: tuple[CommittedSecret, ...] = ()
    files_scanned: int = 0
    """Tracked files checked for secrets, however (the next two say how many without a scan)."""
    files_from_baseline: int = 0
    """... of which the committed baseline describes unchanged (`check.scancache`)."""
    files_from_cache: int = 0
    """... of which the scan cache knew the exact content."""


@dataclass(frozen=True, slots=True)
class SectionError:
    """Why a section could not be read, and what to do about it."""

    message: str
    fix: str
    missing_scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the rules look at. A section is None when it was not read; `errors` then says
    why (a missing scope, a failed call, not a git repository, not requested)."""

    taken_at: datetime
    keys: tuple[ApiKeyInfo, ...] | None = None
    webhooks: tuple[WebhookInfo, ...] | None = None
    members: tuple[MemberInfo, ...] | None = None
    block_list: tuple[BlockEntryInfo, ...] | None = None
    audit: tuple[AuditEvent, ...] | None = None
    repository: RepoSnapshot | None = None
    workspace_name: str | None = None
    errors: Mapping[Section, SectionError] = field(default_factory=lambda: MappingProxyType({}))
    rotation_admin_ids: frozenset[str] = frozenset()
    """Ids of the keys managed secrets mint with (`check.managed`); empty when not read."""
    managed_key_ids: frozenset[str] = frozenset()
    """Ids of the keys managed secrets hold or are about to revoke; empty when not read."""
    managed_webhook_ids: frozenset[str] = frozenset()
    """Ids of the webhooks managed webhook secrets keep the header of; empty when not read."""
    managed_read: bool = False
    """Whether the managed secrets were read (an empty `managed_key_ids` then means none)."""

    def has(self, section: Section) -> bool:
        return {
            Section.KEYS: self.keys,
            Section.WEBHOOKS: self.webhooks,
            Section.MEMBERS: self.members,
            Section.BLOCKLIST: self.block_list,
            Section.AUDIT: self.audit,
            Section.REPOSITORY: self.repository,
        }[section] is not None


@dataclass(frozen=True, slots=True)
class Report:
    """A finished check: what was read, from where, and every finding in rule order."""

    taken_at: datetime
    findings: tuple[Finding, ...]
    target: str | None = None
    workspace_name: str | None = None
    repository: str | None = None

    @property
    def failed(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.failed)

    def counts(self) -> dict[str, int]:
        """`passed`, `failed`, `skipped`, and failed findings per severity (every key present)."""
        counts = {"passed": 0, "failed": 0, "skipped": 0} | {str(s): 0 for s in Severity}
        for finding in self.findings:
            counts[{"pass": "passed", "fail": "failed", "skip": "skipped"}[finding.status]] += 1
            if finding.failed:
                counts[str(finding.severity)] += 1
        return counts

    def rule_counts(self) -> dict[str, int]:
        """Rules (not findings) by outcome: a rule failed when any of its findings failed, was
        skipped when it could not be evaluated, and passed otherwise."""
        status: dict[str, str] = {}
        for finding in self.findings:
            before = status.get(finding.rule_id)
            if before == "fail" or (before == "skip" and finding.status == "pass"):
                continue
            status[finding.rule_id] = finding.status
        counts = {"rules_failed": 0, "rules_passed": 0, "rules_skipped": 0}
        for value in status.values():
            counts[
                {"pass": "rules_passed", "fail": "rules_failed", "skip": "rules_skipped"}[value]
            ] += 1
        return counts
