"""Audit-trail rules over the last `audit_window_days`: MFA attacks, TOTP switched off, and API
keys created or deleted by anything other than the rotation engine.

Telling rotation from a person: Instantly records, for an API call, the id of the key that made
it (`api_key_id`). The rotation engine makes its calls with its key-admin key, whose name follows
`<prefix>/<secret>/<rotation id>` once it has rotated itself at least once; before that, the
hand-made admin key can be trusted by listing its id or name in the policy's `rotation_keys`.
So a create (37) or delete (38) is inside rotation when it came through the API from a trusted
key. The actor's name is looked up in the current key list and, for keys deleted since, in the
audit entries' metadata; an actor that can no longer be named is trusted only when the key it
created or deleted carries a managed name. Anything done in the dashboard is outside rotation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from instantly_guard.check.model import ApiKeyInfo, AuditEvent, Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules.base import Failure, Outcome, plural, rule
from instantly_guard.check.rules.keys import is_managed_name
from instantly_guard.redaction import redact
from instantly_guard.vocabulary import ActivityType

MFA_CHALLENGE_FAILED = ActivityType.MFA_LOGIN_CHALLENGE_FAILED
MFA_TOO_MANY_FAILURES = ActivityType.MFA_LOGIN_CHALLENGE_FAILED_TOO_MANY_TIMES
TOTP_DISABLED = ActivityType.TOTP_DISABLED
API_KEY_CREATED = ActivityType.API_KEY_CREATED
API_KEY_DELETED = ActivityType.API_KEY_DELETED

# Where Instantly's (sanitised, schemaless) audit_metadata may name the key an entry is about.
_NAME_FIELDS = ("name", "key_name", "api_key_name")
_ID_FIELDS = ("key_id", "id", "target_api_key_id", "api_key")


def recent(snapshot: Snapshot, policy: Policy) -> list[AuditEvent]:
    """The events inside the policy's window, oldest first."""
    since = snapshot.taken_at - timedelta(days=policy.audit_window_days)
    return sorted(
        (e for e in snapshot.audit or () if e.timestamp >= since), key=lambda e: e.timestamp
    )


def who(event: AuditEvent) -> str:
    """A person or key in evidence: names go through redaction (an address becomes a hash)."""
    if event.user_name:
        person = redact(event.user_name)
    elif event.user_id:
        person = f"user {event.user_id}"
    else:
        person = "unknown user"
    return person


def _window(policy: Policy) -> str:
    return f"in the last {plural(policy.audit_window_days, 'day')}"


@rule(
    "audit.mfa-failures",
    title="Repeated MFA failures",
    severity=Severity.HIGH,
    section=Section.AUDIT,
    fix=(
        "Confirm with the user; if it was not them, their password is known to someone else: "
        "reset it, review their sessions, and check the audit log for what followed."
    ),
    help=(
        "Failed MFA challenges (audit type 29) mean someone got past the password. Several in a "
        "row, or Instantly's 'too many failures' lock (type 30), is an account takeover attempt."
    ),
)
def mfa_failures(snapshot: Snapshot, policy: Policy) -> Outcome:
    events = recent(snapshot, policy)
    failed: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in events:
        if event.activity_type == MFA_CHALLENGE_FAILED:
            failed[event.user_id or event.user_name or event.ip_address or "?"].append(event)
    failures = []
    for group in failed.values():
        if len(group) >= policy.mfa_failure_threshold:
            ips = sorted({e.ip_address for e in group if e.ip_address})
            failures.append(
                Failure(
                    f"{len(group)} failed MFA challenges for {who(group[0])} between "
                    f"{group[0].timestamp:%Y-%m-%d %H:%M} and {group[-1].timestamp:%Y-%m-%d %H:%M} "
                    f"UTC from {plural(len(ips), 'address')} ({', '.join(ips[:3])})",
                    subject=f"user/{group[0].user_id or '?'}",
                )
            )
    for event in events:
        if event.activity_type == MFA_TOO_MANY_FAILURES:
            failures.append(
                Failure(
                    f"MFA locked after too many failures for {who(event)} at "
                    f"{event.timestamp:%Y-%m-%d %H:%M} UTC from {event.ip_address or '?'}",
                    subject=f"audit-log/{event.id}",
                )
            )
    total = sum(len(g) for g in failed.values())
    return Outcome(
        failures,
        f"{plural(total, 'failed MFA challenge')} {_window(policy)}, "
        f"none {policy.mfa_failure_threshold}+ for one user",
    )


@rule(
    "audit.totp-disabled",
    title="TOTP disabled",
    severity=Severity.HIGH,
    section=Section.AUDIT,
    fix="Ask the user to enrol TOTP again; if they did not disable it, treat the account as taken.",
    help=(
        "Switching off two-factor authentication (audit type 26) is the first thing an attacker "
        "does with a hijacked session, and leaves the account protected by its password alone."
    ),
)
def totp_disabled(snapshot: Snapshot, policy: Policy) -> Outcome:
    events = [e for e in recent(snapshot, policy) if e.activity_type == TOTP_DISABLED]
    failures = [
        Failure(
            f"TOTP disabled for {who(e)} at {e.timestamp:%Y-%m-%d %H:%M} UTC "
            f"from {e.ip_address or '?'}",
            subject=f"audit-log/{e.id}",
        )
        for e in events
    ]
    return Outcome(failures, f"no TOTP disabled {_window(policy)}")


@rule(
    "audit.key-change-outside-rotation",
    title="API keys created or deleted outside rotation",
    severity=Severity.HIGH,
    section=Section.AUDIT,
    fix=(
        "Find out who made the change and why; delete keys nobody owns. Mint keys through "
        "instantly-guard (secrets declare + rotate); list a trusted hand-made admin key in the "
        "policy's rotation_keys until its first rotation."
    ),
    help=(
        "Keys should be minted and revoked only by the rotation engine. A key created in the "
        "dashboard or by another key is unmanaged, usually over-privileged, and never rotated; "
        "an unexpected deletion can break an integration or hide a leaked key's tracks."
    ),
)
def key_change_outside_rotation(snapshot: Snapshot, policy: Policy) -> Outcome:
    events = [
        e for e in recent(snapshot, policy) if e.activity_type in (API_KEY_CREATED, API_KEY_DELETED)
    ]
    names = key_names(snapshot.keys or (), events)
    failures = []
    for event in events:
        reason = outside_rotation(event, names, policy, snapshot)
        if reason is None:
            continue
        verb = "created" if event.activity_type == API_KEY_CREATED else "deleted"
        affected = _affected_name(event.metadata)
        what = f"API key {affected!r}" if affected else "an API key"
        failures.append(
            Failure(
                f"{what} {verb} at {event.timestamp:%Y-%m-%d %H:%M} UTC {reason}",
                subject=f"audit-log/{event.id}",
            )
        )
    return Outcome(
        failures,
        f"{plural(len(events), 'key creation/deletion')} {_window(policy)}, all by rotation",
    )


def key_names(keys: Iterable[ApiKeyInfo], events: Iterable[AuditEvent]) -> dict[str, str]:
    """Key id -> name, from the current keys and from what the audit metadata reveals about keys
    deleted since (so a rotated-away admin key can still be named)."""
    names = {key.id: key.name for key in keys}
    for event in events:
        key_id, name = _affected_id(event.metadata), _affected_name(event.metadata)
        if key_id and name:
            names.setdefault(key_id, name)
    return names


def outside_rotation(
    event: AuditEvent,
    names: Mapping[str, str],
    policy: Policy,
    snapshot: Snapshot | None = None,
) -> str | None:
    """Why `event` (a 37 or 38) was not the rotation engine's doing, or None when it was.

    With the managed secrets' key ids (`snapshot.rotation_admin_ids`), a change made by a
    rotation's admin key to a managed key (one a managed secret records, or named with the
    managed prefix) is the rotation's, whatever the admin key is called."""
    if not event.from_api:
        return f"by {who(event)} in the dashboard"
    actor = event.api_key_id
    if actor is None:
        return "through the API by an unidentified key"
    if snapshot is not None and actor in snapshot.rotation_admin_ids:
        affected_id, affected_name = _affected_id(event.metadata), _affected_name(event.metadata)
        if (affected_id is not None and affected_id in snapshot.managed_key_ids) or (
            affected_name is not None and is_managed_name(affected_name, policy.managed_key_prefix)
        ):
            return None
    actor_name = names.get(actor)
    trusted = set(policy.rotation_keys)
    if actor in trusted or (actor_name is not None and actor_name in trusted):
        return None
    if actor_name is not None:
        if is_managed_name(actor_name, policy.managed_key_prefix):
            return None
        return f"by unmanaged key {actor_name!r} (id {actor})"
    affected = _affected_name(event.metadata)
    if affected is not None and is_managed_name(affected, policy.managed_key_prefix):
        return None
    if snapshot is not None and snapshot.keys is None:
        # The keys could not be listed: nothing says whether the key still exists.
        return (
            f"by key {actor}, not in rotation_keys (unnamed: the check's key cannot list "
            "API keys, which needs api_keys:read)"
        )
    return f"by key {actor}, which no longer exists and is not in rotation_keys"


def _affected_name(metadata: Mapping[str, Any]) -> str | None:
    return _first_text(metadata, _NAME_FIELDS)


def _affected_id(metadata: Mapping[str, Any]) -> str | None:
    return _first_text(metadata, _ID_FIELDS)


def _first_text(metadata: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of `fields` holding a non-empty string (the metadata has no schema)."""
    return next((v for f in fields if isinstance(v := metadata.get(f), str) and v), None)


RULES = (mfa_failures, totp_disabled, key_change_outside_rotation)
