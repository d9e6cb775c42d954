"""What the rules read (`Event`, `Config`) and what they report (`Hit`, then `Finding`).

An `Event` is one entry of the exported audit log: one of Instantly's audit entries, or an
inventory change written beside them (`source: inventory`, the issue-21 contract: `change`,
`object`, `before`, `after`). Plain frozen dataclasses, so every rule is a pure function a test
feeds by hand or from a sample file (`payload.event_from_payload`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

DEFAULT_KEY_PREFIX = "instantly-guard"


class Severity(StrEnum):
    """How bad a failed check or a finding is. Ordered: compare with `rank`."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def log_severity(self) -> str:
        """Cloud Logging's LogSeverity for a finding of this severity."""
        return _LOG_SEVERITY[self]


_RANKS = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}
_LOG_SEVERITY = {
    Severity.INFO: "INFO",
    Severity.LOW: "NOTICE",
    Severity.MEDIUM: "WARNING",
    Severity.HIGH: "ERROR",
    Severity.CRITICAL: "CRITICAL",
}

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InventoryChange:
    """An inventory change entry (issue 21): `change` is e.g. `member.role_changed`."""

    change: str
    object_type: str
    object_id: str
    object_name: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Event:
    """One audit-log entry. `activity_type` is None for an inventory change (`inventory`)."""

    id: str
    timestamp: datetime
    activity_type: int | None
    from_api: bool = False
    api_key_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    ip_address: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    affected_count: float | None = None
    webhook_id: str | None = None
    inventory: InventoryChange | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """What the rules are tuned with. The check builds one from its policy; the export from its
    settings (`DETECT_*`). `key_names` and the managed ids tell rotation from a person."""

    mfa_failure_threshold: int = 3
    mfa_burst_gap: timedelta = timedelta(hours=24)
    """Failures further apart than this are separate incidents (the check uses its window)."""
    webhook_allowed_hosts: tuple[str, ...] = ()
    lead_export_threshold: int = 1000
    lead_export_window: timedelta = timedelta(hours=24)
    managed_key_prefix: str = DEFAULT_KEY_PREFIX
    rotation_keys: tuple[str, ...] = ()
    rotation_admin_ids: frozenset[str] = frozenset()
    managed_key_ids: frozenset[str] = frozenset()
    key_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    keys_listed: bool | None = None
    """True when `key_names` holds the workspace's current keys (the check read them), False when
    the check could not list them, None in the export (it never lists keys)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One incident a rule found. `incident` identifies it among the rule's incidents (the first
    entry's id, a user and a burst): equal incidents found again later are the same finding."""

    message: str
    subject: str
    entry_ids: tuple[str, ...]
    incident: str
    first_at: datetime
    last_at: datetime
    series: str | None = None
    """For a windowed rule: whose incidents these are (the person of a burst). Entries written
    out of order can show one incident as several groups in turn; the detector treats hits of
    one rule and series whose spans meet (within the rule's `joins` gap) as one incident."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A hit with its rule's metadata: one entry of the findings log."""

    rule_id: str
    title: str
    severity: Severity
    technique: str | None
    fix: str
    hit: Hit
    detected_at: datetime
    mode: str = "export"

    @property
    def key(self) -> str:
        """The dedupe key: one finding per rule and incident, however often it is seen."""
        return f"{self.rule_id}:{self.hit.incident}"

    @property
    def insert_id(self) -> str:
        """Stable across reruns, so Cloud Logging collapses a finding written twice."""
        return "finding-" + hashlib.sha256(self.key.encode()).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "instantly-guard.finding",
            "rule": self.rule_id,
            "title": self.title,
            "severity": self.severity.value,
            "technique": self.technique,
            "message": self.hit.message,
            "subject": self.hit.subject,
            "audit_entry_ids": list(self.hit.entry_ids),
            "incident": self.key,
            "first_event_at": _iso(self.hit.first_at),
            "last_event_at": _iso(self.hit.last_at),
            "detected_at": _iso(self.detected_at),
            "fix": self.fix,
            "mode": self.mode,
        }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
