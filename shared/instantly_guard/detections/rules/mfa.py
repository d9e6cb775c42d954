"""Account-takeover signs in the trail: failed MFA challenges, a success after failures, TOTP
switched off, a recovery code used."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from instantly_guard.detections.base import detection, single
from instantly_guard.detections.model import Config, Event, Hit, Severity
from instantly_guard.detections.text import plural, when, who
from instantly_guard.vocabulary import ActivityType

MFA_CHALLENGE_FAILED = ActivityType.MFA_LOGIN_CHALLENGE_FAILED
MFA_TOO_MANY_FAILURES = ActivityType.MFA_LOGIN_CHALLENGE_FAILED_TOO_MANY_TIMES
MFA_SUCCEEDED = ActivityType.MFA_LOGIN_SUCCEEDED
MFA_RECOVERY_CODE_USED = ActivityType.MFA_RECOVERY_CODE_USED
TOTP_DISABLED = ActivityType.TOTP_DISABLED

# Windowed rules keep this much of the trail between export runs (a burst's gap at most).
LOOKBACK = timedelta(days=2)


def person(event: Event) -> str:
    """Whose login an entry is about: the user, else the name, else the address."""
    return event.user_id or event.user_name or event.ip_address or "?"


def bursts(events: Sequence[Event], gap: timedelta) -> list[list[Event]]:
    """`events` (oldest first) of one person, cut where two are more than `gap` apart."""
    runs: list[list[Event]] = []
    for event in events:
        if runs and event.timestamp - runs[-1][-1].timestamp <= gap:
            runs[-1].append(event)
        else:
            runs.append([event])
    return runs


def _addresses(events: Sequence[Event]) -> list[str]:
    return sorted({e.ip_address for e in events if e.ip_address})


@detection(
    "audit.mfa-failures",
    title="Repeated MFA failures",
    severity=Severity.HIGH,
    technique="T1621",
    activities=(MFA_CHALLENGE_FAILED, MFA_TOO_MANY_FAILURES),
    lookback=LOOKBACK,
    joins=lambda config: config.mfa_burst_gap,
    fix=(
        "Confirm with the user; if it was not them, their password is known to someone else: "
        "reset it, review their sessions, and check the audit log for what followed."
    ),
    help=(
        "Failed MFA challenges (audit type 29) mean someone got past the password. Several in a "
        "row, or Instantly's 'too many failures' lock (type 30), is an account takeover attempt."
    ),
)
def mfa_failures(events: Sequence[Event], config: Config) -> list[Hit]:
    failed: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event.activity_type == MFA_CHALLENGE_FAILED:
            failed[person(event)].append(event)
    hits = []
    for user, attempts in failed.items():
        for group in bursts(attempts, config.mfa_burst_gap):
            if len(group) < config.mfa_failure_threshold:
                continue
            ips = _addresses(group)
            # The incident is the burst: found again with more failures, it is the same one.
            hits.append(
                Hit(
                    f"{len(group)} failed MFA challenges for {who(group[0])} between "
                    f"{group[0].timestamp:%Y-%m-%d %H:%M} and {group[-1].timestamp:%Y-%m-%d %H:%M} "
                    f"UTC from {plural(len(ips), 'address')} ({', '.join(ips[:3])})",
                    f"user/{group[0].user_id or '?'}",
                    tuple(e.id for e in group),
                    f"{user}:{group[0].id}",
                    group[0].timestamp,
                    group[-1].timestamp,
                    user,
                )
            )
    hits.extend(
        single(
            event,
            f"MFA locked after too many failures for {who(event)} at {when(event)} "
            f"from {event.ip_address or '?'}",
        )
        for event in events
        if event.activity_type == MFA_TOO_MANY_FAILURES
    )
    return hits


@detection(
    "audit.mfa-success-after-failures",
    title="MFA success after failures",
    severity=Severity.HIGH,
    technique="T1078",
    activities=(MFA_CHALLENGE_FAILED, MFA_TOO_MANY_FAILURES, MFA_SUCCEEDED),
    lookback=LOOKBACK,
    fix=(
        "Ask the user whether both the failures and the login were theirs; if not, the account "
        "is taken: reset the password and TOTP, end its sessions, review what it did since."
    ),
    help=(
        "An MFA login that succeeds (type 31) after failed challenges for the same user (29, "
        "30) within the burst gap is either a user who fumbled a code or an attacker who got in."
    ),
)
def mfa_success_after_failures(events: Sequence[Event], config: Config) -> list[Hit]:
    failures: dict[str, list[Event]] = defaultdict(list)
    hits = []
    for event in events:
        user = person(event)
        if event.activity_type != MFA_SUCCEEDED:
            failures[user].append(event)
            continue
        recent = [
            f for f in failures[user] if event.timestamp - f.timestamp <= config.mfa_burst_gap
        ]
        failures[user] = []  # a success closes the burst: later failures start a new one
        if not recent:
            continue
        ips = _addresses([*recent, event])
        hits.append(
            Hit(
                f"MFA login succeeded for {who(event)} at {when(event)} from "
                f"{event.ip_address or '?'} after {plural(len(recent), 'failed challenge')} "
                f"since {recent[0].timestamp:%Y-%m-%d %H:%M} UTC "
                f"(addresses: {', '.join(ips[:3]) or '?'})",
                f"user/{event.user_id or '?'}",
                (*(f.id for f in recent), event.id),
                event.id,
                recent[0].timestamp,
                event.timestamp,
            )
        )
    return hits


@detection(
    "audit.totp-disabled",
    title="TOTP disabled",
    severity=Severity.HIGH,
    technique="T1556.006",
    activities=(TOTP_DISABLED,),
    fix="Ask the user to enrol TOTP again; if they did not disable it, treat the account as taken.",
    help=(
        "Switching off two-factor authentication (audit type 26) is the first thing an attacker "
        "does with a hijacked session, and leaves the account protected by its password alone."
    ),
)
def totp_disabled(events: Sequence[Event], config: Config) -> list[Hit]:
    return [
        single(e, f"TOTP disabled for {who(e)} at {when(e)} from {e.ip_address or '?'}")
        for e in events
    ]


@detection(
    "audit.mfa-recovery-code-used",
    title="MFA recovery code used",
    severity=Severity.MEDIUM,
    technique="T1556.006",
    activities=(MFA_RECOVERY_CODE_USED,),
    fix=(
        "Confirm with the user that they lost their device; if not, treat the account as taken. "
        "Either way, have them generate new recovery codes and enrol TOTP again."
    ),
    help=(
        "A recovery code (audit type 28) bypasses the second factor. Users rarely need one; an "
        "attacker holding a stolen code uses it to get past MFA."
    ),
)
def mfa_recovery_code_used(events: Sequence[Event], config: Config) -> list[Hit]:
    return [
        single(e, f"MFA recovery code used by {who(e)} at {when(e)} from {e.ip_address or '?'}")
        for e in events
    ]


RULES = (mfa_failures, mfa_success_after_failures, totp_disabled, mfa_recovery_code_used)
