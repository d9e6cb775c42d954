"""An Instantly object -> the compact record the inventory compares and keeps.

A record is `(id, name, fields)`: `name` is what a person reads (an email, a key's name, a URL, a
blocked value), `fields` exactly what is compared, under the names the change entries use
(docs/inventory.md). Nothing secret is ever kept: an API key's value is never read, and a webhook
header value only as a fingerprint, and only when it is readable (a masked value, `abcd********`,
is a fingerprint of nothing: it would change whenever Instantly's masking does). Fingerprints
are salted with the header's name and a fixed context, so equal values under different names do
not look alike and a fingerprint never matches a plain hash of the value.

Each record is stored as one line, `<id as JSON>\\t<record as canonical JSON>`: the lines of one
kind sort by id exactly as their ids do (a JSON-quoted id is never a prefix of another one), so
two snapshots are compared as sorted streams.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from instantly_guard.instantly.models import (
    ApiKey,
    BlockListEntry,
    Webhook,
    Workspace,
    WorkspaceMember,
)

MEMBER: Final = "member"
KEY: Final = "key"
WEBHOOK: Final = "webhook"
BLOCKLIST: Final = "blocklist"
WORKSPACE: Final = "workspace"
KINDS: Final = (WORKSPACE, MEMBER, KEY, WEBHOOK, BLOCKLIST)
"""Every kind, in the order a run reads them and a snapshot holds them (the workspace first: its
id heads the snapshot)."""

# Masks seen in APIs: runs of `*`, `•` or `x`, an ellipsis, "redacted"/"hidden".
_MASKED: Final = re.compile(r"\*{3,}|•{2,}|…|x{6,}|redacted|hidden", re.IGNORECASE)
_FINGERPRINT_CONTEXT: Final = b"instantly-guard/inventory/webhook-header/v1\x00"

WORKSPACE_SETTINGS: Final = (
    "name",
    "owner",
    "plan_id",
    "plan_id_bundle",
    "plan_id_leadfinder",
    "plan_id_crm",
    "plan_id_website_visitor",
    "plan_id_inbox_placement",
    "add_unsub_to_block",
    "default_opportunity_value",
    "org_logo_url",
    "org_client_domain",
    "scheduled_for_removal_at",
)
"""The workspace's settings that are compared (`timestamp_updated` moves by itself)."""


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    name: str
    fields: Mapping[str, Any]

    def line(self) -> str:
        body = json.dumps(
            {"name": self.name, "fields": self.fields},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return f"{json.dumps(self.id)}\t{body}"


def split_line(line: str) -> tuple[str, str]:
    """(sort key, body) of a stored line: the key is the JSON-quoted id."""
    key, _, body = line.partition("\t")
    return key, body


def parse_line(line: str) -> Record:
    key, body = split_line(line)
    data = json.loads(body)
    return Record(id=str(json.loads(key)), name=str(data["name"]), fields=data["fields"])


def digest(body: str) -> str:
    """A short hash of a record's canonical JSON (for insertIds, never shown as a fingerprint)."""
    return hashlib.sha256(body.encode()).hexdigest()[:24]


def looks_masked(value: str) -> bool:
    return bool(_MASKED.search(value))


def header_fingerprint(name: str, value: str) -> str | None:
    """`sha256:<16 hex>` of a readable header value; None when the value reads masked."""
    if looks_masked(value):
        return None
    hashed = hashlib.sha256(_FINGERPRINT_CONTEXT + name.lower().encode() + b"\x00" + value.encode())
    return "sha256:" + hashed.hexdigest()[:16]


def member(item: WorkspaceMember) -> Record:
    permissions = sorted(item.permissions) if item.permissions is not None else None
    return Record(
        item.id,
        item.email,
        {
            "email": item.email,
            "role": item.role,
            "permissions": permissions,
            "accepted": item.accepted,
        },
    )


def key(item: ApiKey) -> Record:
    # `item.key` (a masked value at best) is deliberately never touched.
    return Record(item.id, item.name, {"name": item.name, "scopes": sorted(item.scopes)})


def webhook(item: Webhook) -> Record:
    headers = item.headers or {}
    fingerprints = {
        name: print_
        for name, value in sorted(headers.items())
        if (print_ := header_fingerprint(name, value)) is not None
    }
    return Record(
        item.id,
        item.name or item.target_hook_url,
        {
            "url": item.target_hook_url,
            "event_type": item.event_type,
            "campaign": item.campaign,
            "status": item.status,
            "header_names": sorted(headers),
            "header_fingerprints": fingerprints,
        },
    )


def blocklist(item: BlockListEntry) -> Record:
    return Record(item.id, item.bl_value, {"value": item.bl_value})


def workspace(item: Workspace) -> Record:
    data = item.model_dump(mode="json")
    return Record(item.id, item.name, {name: data.get(name) for name in WORKSPACE_SETTINGS})
