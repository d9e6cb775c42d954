"""A record's before and after -> the change entries of the inventory's vocabulary.

Vocabulary (label `change`, field `change`):

    member.invited  member.joined  member.removed  member.role_changed  member.permissions_changed
    key.created  key.deleted
    webhook.created  webhook.deleted  webhook.target_changed  webhook.headers_changed
    webhook.filter_changed  webhook.status_changed
    blocklist.added  blocklist.removed
    workspace.changed
    inventory.baseline      the first run: counts per kind, never thousands of "added"

One record can make several entries (a webhook retargeted and disabled at once): each carries the
record's whole before and after. Severity (Cloud Logging's names; `severity>=WARNING` alerts):
WARNING for a promotion to admin or owner (an invite as one too), an API key created or deleted,
a webhook moved to another target or disabled, a blocked domain removed; INFO for a block-list
entry added and the baseline; NOTICE for the rest.

`insertId` is a hash of (change, object id, before-hash, after-hash): a run that is repeated
after a crash, or overlaps another, writes the same entries with the same ids, and the entry's
timestamp is the previous snapshot's time (not the run's clock), so Cloud Logging collapses them
(it drops an entry with the insertId and timestamp of one it holds). The run's own time is
`observed_at`: the change happened between `previous_snapshot_at` and it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from instantly_guard.audit.entries import ENVELOPE_BYTES, ExportEntry
from instantly_guard.audit.severity import Severity
from instantly_guard.inventory.records import (
    BLOCKLIST,
    KEY,
    MEMBER,
    WEBHOOK,
    WORKSPACE,
    Record,
)

SOURCE: Final = "inventory"
BASELINE: Final = "inventory.baseline"
VOCABULARY: Final = (
    "member.invited",
    "member.joined",
    "member.removed",
    "member.role_changed",
    "member.permissions_changed",
    "key.created",
    "key.deleted",
    "webhook.created",
    "webhook.deleted",
    "webhook.target_changed",
    "webhook.headers_changed",
    "webhook.filter_changed",
    "webhook.status_changed",
    "blocklist.added",
    "blocklist.removed",
    "workspace.changed",
    BASELINE,
)
_Make = Callable[..., "Change"]
"""Builds one `Change` of the record being classified: (change, severity[, before, after])."""
PRIVILEGED_ROLES: Final = frozenset({"admin", "owner"})
DISABLED_STATUS: Final = -1


@dataclass(frozen=True, slots=True)
class Change:
    change: str
    kind: str
    object_id: str
    name: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    severity: Severity
    before_hash: str | None
    after_hash: str | None

    @property
    def insert_id(self) -> str:
        material = "\x00".join(
            (
                self.change,
                self.kind,
                self.object_id,
                self.before_hash or "-",
                self.after_hash or "-",
            )
        )
        return "inventory-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def _promoted(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    was = before.get("role") if before is not None else None
    return after.get("role") in PRIVILEGED_ROLES and was not in PRIVILEGED_ROLES


def _is_domain(value: str) -> bool:
    return "@" not in value


def classify(
    kind: str,
    before: Record | None,
    after: Record | None,
    *,
    before_hash: str | None,
    after_hash: str | None,
) -> list[Change]:
    """The entries for one record that differs between two snapshots (none when the difference
    has no word in the vocabulary, e.g. a key renamed)."""
    either = after if after is not None else before
    if either is None:
        return []
    record: Record = either
    old = dict(before.fields) if before is not None else None
    new = dict(after.fields) if after is not None else None

    def change(
        name: str,
        severity: Severity,
        old_view: Mapping[str, Any] | None = old,
        new_view: Mapping[str, Any] | None = new,
    ) -> Change:
        return Change(
            name,
            kind,
            record.id,
            record.name,
            old_view,
            new_view,
            severity,
            before_hash,
            after_hash,
        )

    if kind == MEMBER:
        return _member(change, old, new)
    if kind == KEY:
        if old is None:
            return [change("key.created", Severity.WARNING)]
        if new is None:
            return [change("key.deleted", Severity.WARNING)]
        return []
    if kind == WEBHOOK:
        return _webhook(change, old, new)
    if kind == BLOCKLIST:
        if old is None:
            return [change("blocklist.added", Severity.INFO)]
        if new is None:
            value = str(old.get("value", ""))
            severity = Severity.WARNING if _is_domain(value) else Severity.NOTICE
            return [change("blocklist.removed", severity)]
        return []
    if kind == WORKSPACE and old is not None and new is not None:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if not changed:
            return []
        return [
            change(
                "workspace.changed",
                Severity.NOTICE,
                {k: old.get(k) for k in changed},
                {k: new.get(k) for k in changed},
            )
        ]
    return []


def _member(change: _Make, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Change]:
    if new is None:
        return [change("member.removed", Severity.NOTICE)]
    if old is None:
        severity = Severity.WARNING if _promoted(None, new) else Severity.NOTICE
        return [change("member.joined" if new.get("accepted") else "member.invited", severity)]
    out: list[Change] = []
    if not old.get("accepted") and new.get("accepted"):
        out.append(change("member.joined", Severity.NOTICE))
    if old.get("role") != new.get("role"):
        severity = Severity.WARNING if _promoted(old, new) else Severity.NOTICE
        out.append(change("member.role_changed", severity))
    if old.get("permissions") != new.get("permissions"):
        out.append(change("member.permissions_changed", Severity.NOTICE))
    return out


def _webhook(change: _Make, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Change]:
    if old is None:
        return [change("webhook.created", Severity.NOTICE)]
    if new is None:
        return [change("webhook.deleted", Severity.NOTICE)]
    out: list[Change] = []
    if old.get("url") != new.get("url"):
        out.append(change("webhook.target_changed", Severity.WARNING))
    if _headers_differ(old, new):
        out.append(change("webhook.headers_changed", Severity.NOTICE))
    if (old.get("event_type"), old.get("campaign")) != (new.get("event_type"), new.get("campaign")):
        out.append(change("webhook.filter_changed", Severity.NOTICE))
    if old.get("status") != new.get("status"):
        disabled = new.get("status") == DISABLED_STATUS
        out.append(
            change("webhook.status_changed", Severity.WARNING if disabled else Severity.NOTICE)
        )
    return out


def _headers_differ(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Names added or removed, or a value whose fingerprint changed where both reads were
    readable (a value read masked once and raw once is not a change we can see)."""
    if list(old.get("header_names") or []) != list(new.get("header_names") or []):
        return True
    before = old.get("header_fingerprints") or {}
    after = new.get("header_fingerprints") or {}
    return any(before[name] != after[name] for name in set(before) & set(after))


def payload(
    change: Change, *, observed_at: datetime, previous_snapshot_at: datetime | None
) -> dict[str, Any]:
    """The entry's `jsonPayload` (the shape docs/inventory.md and the detection rules read)."""
    return {
        "source": SOURCE,
        "change": change.change,
        "object": {"type": change.kind, "id": change.object_id, "name": change.name},
        "before": dict(change.before) if change.before is not None else None,
        "after": dict(change.after) if change.after is not None else None,
        "observed_at": _rfc3339(observed_at),
        "previous_snapshot_at": _rfc3339(previous_snapshot_at) if previous_snapshot_at else None,
    }


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def to_export_entry(
    change: Change, *, observed_at: datetime, previous_snapshot_at: datetime | None
) -> ExportEntry:
    text = json.dumps(
        payload(change, observed_at=observed_at, previous_snapshot_at=previous_snapshot_at),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    labels = MappingProxyType({"source": SOURCE, "change": change.change})
    return ExportEntry(
        insert_id=change.insert_id,
        timestamp=previous_snapshot_at or observed_at,
        severity=change.severity.value,
        labels=labels,
        payload_json=text,
        size=len(text.encode()) + ENVELOPE_BYTES,
    )


def baseline(
    workspace_id: str, workspace_name: str, counts: Mapping[str, int], snapshot_hash: str
) -> Change:
    """The first run's one entry: how many of each kind it found."""
    return Change(
        BASELINE,
        WORKSPACE,
        workspace_id,
        workspace_name,
        None,
        dict(counts),
        Severity.INFO,
        None,
        snapshot_hash,
    )
