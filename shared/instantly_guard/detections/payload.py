"""An exported log entry's `jsonPayload` -> an `Event`, tolerantly.

The payload is Instantly's entry as sent (plus `activity`), possibly salvaged from a malformed
one, or an inventory change (`source: inventory`). A field of the wrong type is read as absent
rather than failing: a rule then sees less, and the entry itself is already exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from instantly_guard.detections.model import Event, InventoryChange

INVENTORY_SOURCE = "inventory"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else None


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (a naive one is UTC, as Instantly's are); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def is_inventory(payload: Mapping[str, Any]) -> bool:
    return payload.get("source") == INVENTORY_SOURCE


def event_from_payload(
    insert_id: str, payload: Mapping[str, Any], timestamp: datetime | None = None
) -> Event:
    """The event an exported entry records. `insert_id` names it (an inventory change carries no
    id of its own); `timestamp`, the log entry's, is used when the payload has no usable one."""
    inventory = None
    if is_inventory(payload):
        obj = payload.get("object")
        obj = obj if isinstance(obj, Mapping) else {}
        inventory = InventoryChange(
            change=_text(payload.get("change")) or "unknown",
            object_type=_text(obj.get("type")) or "",
            object_id=_text(obj.get("id")) or "",
            object_name=_text(obj.get("name")) or "",
            before=_mapping(payload.get("before")),
            after=_mapping(payload.get("after")),
        )
        when = parse_time(payload.get("observed_at"))
    else:
        when = parse_time(payload.get("timestamp"))
    activity = payload.get("activity_type")
    count = payload.get("affected_count")
    return Event(
        id=(_text(payload.get("id")) if inventory is None else None) or insert_id,
        timestamp=when or timestamp or datetime.fromtimestamp(0, UTC),
        activity_type=activity if isinstance(activity, int) and inventory is None else None,
        from_api=payload.get("from_api") is True,
        api_key_id=_text(payload.get("api_key_id")),
        user_id=_text(payload.get("user_id")),
        user_name=_text(payload.get("user_name")),
        ip_address=_text(payload.get("ip_address")),
        metadata=_mapping(payload.get("audit_metadata")) or MappingProxyType({}),
        affected_count=float(count)
        if isinstance(count, int | float) and not isinstance(count, bool)
        else None,
        webhook_id=_text(payload.get("webhook_id")),
        inventory=inventory,
    )


def event_from_entry(entry: Mapping[str, Any]) -> Event:
    """An event from a whole log entry in Cloud Logging's JSON shape (the JSONL sink's lines,
    the sample files)."""
    payload = entry.get("jsonPayload")
    return event_from_payload(
        str(entry.get("insertId") or ""),
        payload if isinstance(payload, Mapping) else {},
        parse_time(entry.get("timestamp")),
    )
