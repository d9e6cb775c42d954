"""Audit-trail rules over the last `audit_window_days`: MFA attacks, TOTP switched off, and API
keys created or deleted by anything other than the rotation engine.

The rules themselves live in the detection rule base (`instantly_guard.detections`), which the
audit export also runs on every batch it writes; here they run in window mode, over the events
the check read, with a `Config` built from the policy and the snapshot. A failure is a hit, with
the same wording and subject in both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from instantly_guard.check.model import AuditEvent, Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules.base import CheckFunction, Failure, Outcome, Rule, plural, rule
from instantly_guard.detections import Config, DetectionRule
from instantly_guard.detections.rules import keys as key_detections
from instantly_guard.detections.rules import mfa
from instantly_guard.detections.rules.keys import API_KEY_CREATED, API_KEY_DELETED
from instantly_guard.detections.rules.mfa import (
    MFA_CHALLENGE_FAILED,
    MFA_TOO_MANY_FAILURES,
    TOTP_DISABLED,
)
from instantly_guard.detections.text import who

__all__ = [
    "API_KEY_CREATED",
    "API_KEY_DELETED",
    "MFA_CHALLENGE_FAILED",
    "MFA_TOO_MANY_FAILURES",
    "RULES",
    "TOTP_DISABLED",
    "config",
    "recent",
    "who",
]


def recent(snapshot: Snapshot, policy: Policy) -> list[AuditEvent]:
    """The events inside the policy's window, oldest first."""
    since = snapshot.taken_at - timedelta(days=policy.audit_window_days)
    return sorted(
        (e for e in snapshot.audit or () if e.timestamp >= since), key=lambda e: e.timestamp
    )


def config(snapshot: Snapshot, policy: Policy) -> Config:
    """The rule base's configuration for a check: the whole window is one burst, and keys are
    named from the workspace's key list (when the check could read it)."""
    return Config(
        mfa_failure_threshold=policy.mfa_failure_threshold,
        mfa_burst_gap=timedelta(days=policy.audit_window_days),
        webhook_allowed_hosts=policy.webhook_allowed_hosts,
        managed_key_prefix=policy.managed_key_prefix,
        rotation_keys=policy.rotation_keys,
        rotation_admin_ids=snapshot.rotation_admin_ids,
        managed_key_ids=snapshot.managed_key_ids,
        key_names={key.id: key.name for key in snapshot.keys or ()},
        keys_listed=snapshot.keys is not None,
    )


def _failures(detection: DetectionRule, snapshot: Snapshot, policy: Policy) -> list[Failure]:
    hits = detection(recent(snapshot, policy), config(snapshot, policy))
    return [Failure(hit.message, subject=hit.subject) for hit in hits]


def _window(policy: Policy) -> str:
    return f"in the last {plural(policy.audit_window_days, 'day')}"


def _declare(detection: DetectionRule) -> Callable[[CheckFunction], Rule]:
    return rule(
        detection.id,
        title=detection.title,
        severity=Severity(detection.severity.value),
        section=Section.AUDIT,
        fix=detection.fix,
        help=detection.help,
    )


@_declare(mfa.mfa_failures)
def mfa_failures(snapshot: Snapshot, policy: Policy) -> Outcome:
    total = sum(1 for e in recent(snapshot, policy) if e.activity_type == MFA_CHALLENGE_FAILED)
    return Outcome(
        _failures(mfa.mfa_failures, snapshot, policy),
        f"{plural(total, 'failed MFA challenge')} {_window(policy)}, "
        f"none {policy.mfa_failure_threshold}+ for one user",
    )


@_declare(mfa.totp_disabled)
def totp_disabled(snapshot: Snapshot, policy: Policy) -> Outcome:
    return Outcome(
        _failures(mfa.totp_disabled, snapshot, policy), f"no TOTP disabled {_window(policy)}"
    )


@_declare(key_detections.key_change_outside_rotation)
def key_change_outside_rotation(snapshot: Snapshot, policy: Policy) -> Outcome:
    changes = [
        e for e in recent(snapshot, policy) if e.activity_type in (API_KEY_CREATED, API_KEY_DELETED)
    ]
    return Outcome(
        _failures(key_detections.key_change_outside_rotation, snapshot, policy),
        f"{plural(len(changes), 'key creation/deletion')} {_window(policy)}, all by rotation",
    )


RULES = (mfa_failures, totp_disabled, key_change_outside_rotation)
