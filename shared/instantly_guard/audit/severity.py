"""Instantly audit activity types -> (activity name, Cloud Logging severity).

The ranking is ours (Instantly assigns none). It orders the log for a person reading it; alerts
go through the detection rules' findings instead (`instantly_guard.detections`):

    ERROR    30 MFA failed too many times (a likely credential-stuffing or takeover attempt)
    WARNING  API keys created or deleted (37, 38), a webhook disabled after failures (20: events
             are being lost), TOTP disabled (26), an MFA recovery code used (28), a lead export
             (34: bulk data leaving the workspace)
    NOTICE   changes to the workspace's security or data: deletions, accounts, webhooks, MFA
             enrolment, imports, enrichment; and any activity type Instantly adds later
    INFO     routine work: logins, campaign launch/pause/update, leads added or moved

Rotation creates and deletes keys routinely; the detection rules (and the check) tell those apart
from keys made by hand. An unknown activity type is kept (never dropped) as `activity_<n>` at
NOTICE.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Cloud Logging's `LogSeverity` names (the subset we use, in increasing order)."""

    INFO = "INFO"
    NOTICE = "NOTICE"
    WARNING = "WARNING"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Activity:
    type: int
    name: str
    severity: Severity


def _table(*rows: tuple[int, str, Severity]) -> dict[int, Activity]:
    return {number: Activity(number, name, severity) for number, name, severity in rows}


ACTIVITIES: dict[int, Activity] = _table(
    (1, "user_login", Severity.INFO),
    (2, "lead_deleted", Severity.NOTICE),
    (3, "campaign_deleted", Severity.NOTICE),
    (4, "campaign_launched", Severity.INFO),
    (5, "campaign_paused", Severity.INFO),
    (6, "account_added", Severity.NOTICE),
    (7, "account_deleted", Severity.NOTICE),
    (8, "lead_moved", Severity.INFO),
    (9, "lead_added", Severity.INFO),
    (10, "lead_merged", Severity.INFO),
    (11, "campaign_updated", Severity.INFO),
    (12, "subsequence_updated", Severity.INFO),
    (18, "webhook_created", Severity.NOTICE),
    (19, "webhook_updated", Severity.NOTICE),
    (20, "webhook_disabled", Severity.WARNING),
    (21, "webhook_resumed", Severity.NOTICE),
    (22, "totp_enrollment_started", Severity.NOTICE),
    (23, "totp_enabled", Severity.NOTICE),
    (24, "totp_replacement_started", Severity.NOTICE),
    (25, "totp_replaced", Severity.NOTICE),
    (26, "totp_disabled", Severity.WARNING),
    (27, "mfa_recovery_codes_generated", Severity.NOTICE),
    (28, "mfa_recovery_code_used", Severity.WARNING),
    (29, "mfa_challenge_failed", Severity.NOTICE),
    (30, "mfa_failed_too_many_times", Severity.ERROR),
    (31, "mfa_login_succeeded", Severity.INFO),
    (32, "subscriber_import_started", Severity.NOTICE),
    (33, "subscriber_import_cancelled", Severity.NOTICE),
    (34, "lead_exported", Severity.WARNING),
    (35, "enrichment_created", Severity.NOTICE),
    (36, "account_updated", Severity.NOTICE),
    (37, "api_key_created", Severity.WARNING),
    (38, "api_key_deleted", Severity.WARNING),
)


def activity(activity_type: int) -> Activity:
    """The name and severity of an activity type; unknown types rank NOTICE, never dropped."""
    known = ACTIVITIES.get(activity_type)
    if known is not None:
        return known
    return Activity(activity_type, f"activity_{activity_type}", Severity.NOTICE)
