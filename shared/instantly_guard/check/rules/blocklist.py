"""Block list rule: the configured internal and competitor domains must be blocked."""

from __future__ import annotations

from instantly_guard.check.model import Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules.base import Failure, Outcome, plural, rule


@rule(
    "blocklist.missing-domain",
    title="Internal or competitor domains missing from the block list",
    severity=Severity.MEDIUM,
    section=Section.BLOCKLIST,
    fix='Add each missing domain: POST /block-lists-entries {"bl_value": "<domain>"}.',
    help=(
        "Campaigns must never mail your own staff (an imported list that contains colleagues) "
        "nor competitors. Instantly skips every address on a blocked domain."
    ),
)
def missing_domain(snapshot: Snapshot, policy: Policy) -> Outcome:
    wanted = [(d, "internal") for d in policy.internal_domains] + [
        (d, "competitor") for d in policy.competitor_domains
    ]
    if not wanted:
        return Outcome(
            skip=(
                "not configured: set internal_domains / competitor_domains "
                "(or --internal-domain / --competitor-domain) to check the block list"
            )
        )
    blocked = {
        entry.value.strip().lower().removeprefix("@")
        for entry in snapshot.block_list or ()
        if entry.is_domain or "@" not in entry.value
    }
    failures = [
        Failure(
            f"{kind} domain {domain} is not on the block list",
            subject=f"block-list/{domain}",
        )
        for domain, kind in wanted
        if domain not in blocked
    ]
    return Outcome(failures, f"{plural(len(wanted), 'domain')} configured, all blocked")


RULES = (missing_domain,)
