"""Reading the recorded changes back: the inventory's entries of an exported log, and a one-line
summary of each for a person (`instantly-guard changes`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.inventory.changes import SOURCE

_SUMMARY_FIELDS = 4
_VALUE_CHARS = 60


def _when(payload: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(payload.get("observed_at")).replace("Z", "+00:00"))
    except ValueError:
        return None


def read_changes(path: Path, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The inventory entries of a JSONL log (`LogEntry` shape), oldest first, each once (equal
    insertIds collapse), observed at or after `since`."""
    for entry in read_entries(path, unique=True):
        if (entry.get("labels") or {}).get("source") != SOURCE:
            continue
        payload = entry.get("jsonPayload") or {}
        when = _when(payload)
        if since is not None and (when is None or when < since.astimezone(UTC)):
            continue
        yield entry


def _short(value: Any) -> str:
    if isinstance(value, list):
        text = ",".join(str(v) for v in value) or "[]"
    elif isinstance(value, dict):
        text = ",".join(f"{k}={v}" for k, v in value.items()) or "{}"
    else:
        text = "-" if value is None else str(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def summary(payload: Mapping[str, Any]) -> str:
    """What changed, in a few words: `role: editor -> admin`; a created or removed object's
    fields; a baseline's counts."""
    before, after = payload.get("before"), payload.get("after")
    if not isinstance(before, dict) and isinstance(after, dict):
        return " ".join(f"{k}={_short(v)}" for k, v in list(after.items())[:_SUMMARY_FIELDS])
    if isinstance(before, dict) and not isinstance(after, dict):
        return "was " + " ".join(
            f"{k}={_short(v)}" for k, v in list(before.items())[:_SUMMARY_FIELDS]
        )
    if isinstance(before, dict) and isinstance(after, dict):
        moved = [k for k in after if before.get(k) != after.get(k)]
        return "; ".join(
            f"{k}: {_short(before.get(k))} -> {_short(after.get(k))}"
            for k in moved[:_SUMMARY_FIELDS]
        )
    return ""
