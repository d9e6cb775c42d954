"""Rules on the inventory's change entries (issue 21): written beside Instantly's entries in the
audit log with `source: inventory`, `change`, `object`, `before` and `after`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from instantly_guard.detections.base import detection, single
from instantly_guard.detections.hosts import host_allowed, url_host
from instantly_guard.detections.model import Config, Event, Hit, Severity
from instantly_guard.detections.text import when
from instantly_guard.redaction import redact

PRIVILEGED_ROLES = frozenset({"admin", "owner"})


def _field(side: Mapping[str, Any] | None, name: str) -> Any:
    return None if side is None else side.get(name)


def _role(side: Mapping[str, Any] | None) -> str | None:
    value = _field(side, "role")
    return value.lower() if isinstance(value, str) else None


@detection(
    "inventory.member-promoted",
    title="Member promoted to admin or owner",
    severity=Severity.HIGH,
    technique="T1098.003",
    changes=("member.*",),
    fix=(
        "Confirm the promotion with the workspace owner; if nobody asked for it, demote the "
        "member and review what the account did since."
    ),
    help=(
        "A member whose role becomes admin or owner (a role change, or a member invited with "
        "that role) can mint API keys, add webhooks and remove other members: the step an "
        "attacker with one account takes to keep access."
    ),
)
def member_promoted(events: Sequence[Event], config: Config) -> list[Hit]:
    hits = []
    for event in events:
        change = event.inventory
        if change is None or change.after is None:
            continue
        after, before = _role(change.after), _role(change.before)
        if after not in PRIVILEGED_ROLES or before in PRIVILEGED_ROLES:
            continue
        email = _field(change.after, "email")
        name = redact(email) if isinstance(email, str) and email else change.object_id
        was = f"from {before}" if before else "as a new member"
        hits.append(
            single(
                event,
                f"member {name} became {after} ({was}), observed at {when(event)}",
                f"member/{change.object_id}",
            )
        )
    return hits


@detection(
    "inventory.blocklist-removed",
    title="Block-list entry removed",
    severity=Severity.MEDIUM,
    technique="T1562",
    changes=("blocklist.*",),
    fix=(
        "Find out who removed it and why; add it back unless the removal was agreed "
        "(POST /block-lists-entries)."
    ),
    help=(
        "The block list keeps campaigns away from domains and addresses that must never be "
        "emailed (customers, competitors, legal holds). A removed entry quietly lifts that."
    ),
)
def blocklist_removed(events: Sequence[Event], config: Config) -> list[Hit]:
    hits = []
    for event in events:
        change = event.inventory
        if change is None or change.after is not None or change.before is None:
            continue
        value = _field(change.before, "value")
        shown = redact(value) if isinstance(value, str) and value else change.object_id
        hits.append(
            single(
                event,
                f"block-list entry {shown} removed, observed at {when(event)}",
                f"blocklist/{change.object_id}",
            )
        )
    return hits


@detection(
    "inventory.webhook-target-outside-allowlist",
    title="Webhook target outside the allow list (inventory)",
    severity=Severity.HIGH,
    technique="T1567",
    changes=("webhook.*",),
    fix=(
        "Check who created or changed the webhook and where it sends; delete it if nobody owns "
        "it, or add the host to the allowed webhook hosts after review."
    ),
    help=(
        "The inventory saw a webhook appear, or its URL change, to a host outside the allow "
        "list: a standing copy of the workspace's events to an unreviewed place. Silent "
        "without an allow list."
    ),
)
def webhook_target_outside_allowlist(events: Sequence[Event], config: Config) -> list[Hit]:
    if not config.webhook_allowed_hosts:
        return []
    hits = []
    for event in events:
        change = event.inventory
        if change is None or change.after is None:
            continue
        url, old = _field(change.after, "url"), _field(change.before, "url")
        if not isinstance(url, str) or url == old:
            continue
        host = url_host(url)
        if host_allowed(host, config.webhook_allowed_hosts):
            continue
        hits.append(
            single(
                event,
                f"webhook {change.object_name or change.object_id} now sends to host "
                f"{host or '<none>'!r}, outside the allowed hosts (observed at {when(event)})",
                f"webhook/{change.object_id}",
            )
        )
    return hits


RULES = (member_promoted, blocklist_removed, webhook_target_outside_allowlist)
