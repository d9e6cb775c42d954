"""Workspace member rules: too many admins, stale invitations, members from other domains.

Evidence never carries a member's address: it names the member by id, the hashed address
(`redaction.hash_email`, the same stand-in the logs use) and the domain.
"""

from __future__ import annotations

from datetime import timedelta

from instantly_guard.check.model import MemberInfo, Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules.base import Failure, Outcome, plural, rule
from instantly_guard.redaction import hash_email

PRIVILEGED_ROLES = frozenset({"owner", "admin"})


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def describe(member: MemberInfo) -> str:
    """`admin member 0190... (email:1a2b..., @example.com)`: no address in clear."""
    return (
        f"{member.role} member {member.id} "
        f"({hash_email(member.email)}, @{email_domain(member.email)})"
    )


def subject(member: MemberInfo) -> str:
    return f"member/{member.id}"


def domain_allowed(domain: str, allowed: tuple[str, ...]) -> bool:
    """Exact domain or a subdomain of an allowed one (`eu.example.com` under `example.com`)."""
    return any(domain == d or domain.endswith("." + d) for d in allowed)


def _members(snapshot: Snapshot) -> tuple[MemberInfo, ...]:
    return snapshot.members or ()


@rule(
    "members.too-many-admins",
    title="Owners and admins above the threshold",
    severity=Severity.MEDIUM,
    section=Section.MEMBERS,
    fix="Demote members who do not manage the workspace to editor or view.",
    help=(
        "Owners and admins can create API keys, change webhooks and invite anyone. Every extra "
        "one is another account whose compromise hands over the workspace. The policy's "
        "max_admins (default 3) bounds owners plus admins."
    ),
)
def too_many_admins(snapshot: Snapshot, policy: Policy) -> Outcome:
    privileged = [m for m in _members(snapshot) if m.role.lower() in PRIVILEGED_ROLES]
    checked = f"{plural(len(privileged), 'owner/admin')} (limit {policy.max_admins})"
    if len(privileged) <= policy.max_admins:
        return Outcome([], checked)
    roles = ", ".join(describe(m) for m in privileged)
    return Outcome(
        [
            Failure(
                f"{len(privileged)} owners and admins, limit {policy.max_admins}: {roles}",
                subject="workspace-members",
            )
        ]
    )


@rule(
    "members.stale-invitation",
    title="Invitations pending too long",
    severity=Severity.LOW,
    section=Section.MEMBERS,
    fix="Revoke the invitation (DELETE /workspace-members/{id}); invite again if still needed.",
    help=(
        "An invitation nobody accepted is a standing way into the workspace for whoever gets "
        "hold of that mailbox. Invitations older than invitation_max_age_days (default 14) "
        "should be revoked."
    ),
)
def stale_invitation(snapshot: Snapshot, policy: Policy) -> Outcome:
    limit = timedelta(days=policy.invitation_max_age_days)
    pending = [m for m in _members(snapshot) if not m.accepted]
    failures = []
    for member in pending:
        if member.created is not None and snapshot.taken_at - member.created > limit:
            days = (snapshot.taken_at - member.created).days
            failures.append(
                Failure(
                    f"invitation of {describe(member)} pending for {days} days "
                    f"(limit {policy.invitation_max_age_days})",
                    subject=subject(member),
                )
            )
    return Outcome(
        failures,
        f"{plural(len(pending), 'pending invitation')}, none older than "
        f"{policy.invitation_max_age_days} days",
    )


@rule(
    "members.outside-domain",
    title="Members outside the allowed email domains",
    severity=Severity.MEDIUM,
    section=Section.MEMBERS,
    fix=(
        "Remove the member, or add the domain to allowed_email_domains if it belongs to a "
        "trusted partner."
    ),
    help=(
        "Members with personal or third-party addresses escape your identity provider's "
        "offboarding and MFA policy."
    ),
)
def outside_domain(snapshot: Snapshot, policy: Policy) -> Outcome:
    allowed = policy.allowed_email_domains
    if not allowed:
        return Outcome(
            skip="not configured: set allowed_email_domains (or --allowed-domain) to check members"
        )
    failures = [
        Failure(f"{describe(member)} is outside {', '.join(allowed)}", subject=subject(member))
        for member in _members(snapshot)
        if not domain_allowed(email_domain(member.email), allowed)
    ]
    return Outcome(
        failures, f"{plural(len(_members(snapshot)), 'member')}, all in {', '.join(allowed)}"
    )


RULES = (too_many_admins, stale_invitation, outside_domain)
