"""One Instantly audit entry -> one Cloud Logging entry.

- `timestamp` is the event's time (not the export's), so queries and retention follow the event;
- `insertId` is the Instantly entry id: Cloud Logging collapses entries with equal `insertId` and
  `timestamp`, so an entry written twice (a crash between a write and the checkpoint, two
  overlapping runs) shows up once;
- `severity` and the activity name come from `severity.activity`;
- labels: `organization`, `activity`, `from_api` (strings, as labels must be: `unknown` when
  Instantly sent null);
- `jsonPayload` is the entry as Instantly sent it (unknown fields kept) plus `activity`.

An entry that did not match the documented schema (a `MalformedAuditLog`) is exported all the
same: its payload is the entry exactly as sent, plus `activity` and a `_malformed` marker
(`{"problems": [...], "substituted": {...}}`), and it gets the label `malformed: "true"`, so one
query finds them all (`labels.malformed="true"`).

A value that parsed but cannot be written (a lone surrogate, nesting deeper than a Struct takes)
is salvaged (`salvage.py`): kept in a writable form, with a `_salvaged` marker naming what was
done and the label `salvaged: "true"`, never an error that stops the export.

An entry may hold at most about 256 KiB. A payload above `MAX_PAYLOAD_BYTES` is cut, largest
fields first, and marked with `_truncated: {"original_bytes": N, "fields": [...]}` rather than
failing its whole batch; the identifying fields are never cut.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from instantly_guard.audit.salvage import SALVAGE_MARKER, salvage, too_deep
from instantly_guard.audit.severity import activity
from instantly_guard.instantly.models import AuditLog, MalformedAuditLog

MAX_PAYLOAD_BYTES: Final = 200 * 1024
"""JSON size above which a payload is truncated: Cloud Logging's ~256 KiB per entry, less room for
the envelope and the protobuf encoding of a Struct, which is a little larger than JSON."""

ENVELOPE_BYTES: Final = 512
"""Allowance per entry for insertId, timestamp, severity, labels and field tags when batching."""

TRUNCATION_MARKER: Final = "_truncated"
MALFORMED_MARKER: Final = "_malformed"
_KEPT: Final = frozenset(
    {"id", "timestamp", "organization_id", "activity_type", "activity", "from_api"}
    | {MALFORMED_MARKER, SALVAGE_MARKER}
)
_CUT_SUFFIX: Final = "...[truncated]"
_encode_str = json.encoder.encode_basestring  # a str as a JSON string literal (C implementation)


class ExportEntry(NamedTuple):
    """A log entry ready for a sink.

    The payload is kept as its JSON text (`payload_json`): compact while a window is buffered,
    and what the JSONL sink writes as is; `payload` parses it. `size` estimates the encoded
    entry, for batching. `labels` is shared by every entry with the same labels: read it, never
    change it. (A tuple rather than a frozen dataclass: one is built per exported entry, and a
    frozen dataclass costs twice as much to build.)
    """

    insert_id: str
    timestamp: datetime
    severity: str
    labels: Mapping[str, str]
    payload_json: str
    size: int

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value

    @property
    def key(self) -> tuple[datetime, str]:
        """The export order: oldest first, ties broken by id."""
        return (self.timestamp, self.insert_id)


class _Head(NamedTuple):
    """What entries with the same organization, activity type, `from_api` and malformed flag
    share: an export has a handful of these, computed once each (`_head`)."""

    name: str
    severity: str
    labels: Mapping[str, str]
    size: int  # the envelope allowance plus the labels' text


@functools.lru_cache(maxsize=4096)
def _head(
    organization: str,
    activity_type: int,
    from_api: bool | None,
    malformed: bool,
    salvaged: bool = False,
) -> _Head:
    kind = activity(activity_type)
    labels = {"organization": organization, "activity": kind.name, "from_api": _flag(from_api)}
    if malformed:
        labels["malformed"] = "true"
    if salvaged:
        labels["salvaged"] = "true"
    size = ENVELOPE_BYTES + sum(len(k) + len(v) for k, v in labels.items())
    return _Head(kind.name, kind.severity.value, MappingProxyType(labels), size)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC, as Instantly's times are)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _byte_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def payload_json(record: AuditLog, activity_name: str, max_bytes: int) -> str:
    """The entry as Instantly sent it plus `activity`, as compact JSON within `max_bytes`."""
    return _writable_payload_json(record, activity_name, max_bytes)[0]


def _writable_payload_json(
    record: AuditLog, activity_name: str, max_bytes: int
) -> tuple[str, int, bool]:
    """`_payload_json`, or the salvaged payload when the entry cannot be written as it is;
    the flag says which."""
    try:
        text, size = _payload_json(record, activity_name, max_bytes)
    except (ValueError, RecursionError):  # a surrogate (UnicodeError), pydantic's depth limit
        return _salvaged_payload_json(record, activity_name, max_bytes)
    if too_deep(text):
        return _salvaged_payload_json(record, activity_name, max_bytes)
    if "\ufffd" in text:
        # pydantic writes a lone surrogate in a dict *key* as U+FFFD, silently: look closer, and
        # keep this text if the entry really held U+FFFD.
        salvaged = _salvaged_payload_json(record, activity_name, max_bytes)
        if salvaged[2]:
            return salvaged
    return text, size, False


def _salvaged_payload_json(
    record: AuditLog, activity_name: str, max_bytes: int
) -> tuple[str, int, bool]:
    if isinstance(record, MalformedAuditLog):
        payload: dict[str, Any] = dict(record.raw)
        payload[MALFORMED_MARKER] = {
            "problems": list(record.problems),
            "substituted": dict(record.substituted),
        }
    else:
        payload = {}
        for name in [*type(record).model_fields, *(record.__pydantic_extra__ or {})]:
            value = getattr(record, name)
            # Values as parsed: pydantic's JSON mode would turn a surrogate in a key into U+FFFD
            # unseen. Only a time is written by pydantic, as the fast path writes it.
            payload[name] = (
                record.model_dump(mode="json", include={name})[name]
                if isinstance(value, datetime)
                else value
            )
    payload["activity"] = activity_name
    cleaned, problems = salvage(payload)
    cleaned[SALVAGE_MARKER] = {"problems": problems}
    fitted, _ = fit_payload(cleaned, max_bytes)
    text = json.dumps(fitted, ensure_ascii=False, separators=(",", ":"), default=str)
    return text, _byte_length(text), bool(problems)


def _payload_json(record: AuditLog, activity_name: str, max_bytes: int) -> tuple[str, int]:
    """`payload_json` and its length in bytes (the hot path of a large export: one call per
    entry, so no pydantic wrappers and no second pass over the text)."""
    if isinstance(record, MalformedAuditLog):
        return _malformed_payload_json(record, activity_name, max_bytes)
    extra = record.__pydantic_extra__
    if not extra or "activity" not in extra:
        # Fast path: pydantic's serializer (what `model_dump_json()` calls, same bytes), then
        # `activity` spliced in before the closing brace.
        raw = record.__pydantic_serializer__.to_json(record)
        text = f'{raw[:-1].decode()},"activity":{_encode_str(activity_name)}}}'
        size = len(text) if text.isascii() else len(text.encode())
        if size <= max_bytes:
            return text, size
    payload: dict[str, Any] = record.model_dump(mode="json")
    payload["activity"] = activity_name
    fitted, _ = fit_payload(payload, max_bytes)
    text = json.dumps(fitted, ensure_ascii=False, separators=(",", ":"))
    return text, _byte_length(text)


def _malformed_payload_json(
    record: MalformedAuditLog, activity_name: str, max_bytes: int
) -> tuple[str, int]:
    payload: dict[str, Any] = dict(record.raw)
    payload["activity"] = activity_name
    payload[MALFORMED_MARKER] = {
        "problems": list(record.problems),
        "substituted": dict(record.substituted),
    }
    fitted, _ = fit_payload(payload, max_bytes)
    text = json.dumps(fitted, ensure_ascii=False, separators=(",", ":"), default=str)
    return text, _byte_length(text)


def _writable(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate in an id or label becomes escape text."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode()


def _flag(value: bool | None) -> str:
    return "unknown" if value is None else "true" if value else "false"


def to_export_entry(
    record: AuditLog,
    *,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    timestamp: datetime | None = None,
) -> ExportEntry:
    """Build the log entry for one audit record (see the module doc). `timestamp` is the
    record's time in UTC when the caller already has it."""
    malformed = isinstance(record, MalformedAuditLog)
    name = activity(record.activity_type).name
    text, size, salvaged = _writable_payload_json(record, name, max_payload_bytes)
    head = _head(
        _writable(record.organization_id),
        record.activity_type,
        record.from_api,
        malformed,
        salvaged,
    )
    return ExportEntry(
        _writable(record.id),
        timestamp or as_utc(record.timestamp),
        head.severity,
        head.labels,
        text,
        size + head.size,
    )


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _cut(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max(0, max_bytes - len(_CUT_SUFFIX))
    return encoded[:room].decode("utf-8", errors="ignore") + _CUT_SUFFIX


def fit_payload(payload: dict[str, Any], max_bytes: int) -> tuple[dict[str, Any], int]:
    """Return `payload` (unchanged when it fits) and its JSON size in bytes.

    When it does not fit, the largest cuttable fields are replaced, one at a time, by their JSON
    text cut to what is left, until it fits; the marker names them and the original size.
    """
    size = _json_size(payload)
    if size <= max_bytes:
        return payload, size
    original = size
    result = dict(payload)
    marker: dict[str, Any] = {"original_bytes": original, "fields": []}
    result[TRUNCATION_MARKER] = marker
    sizes = {k: _json_size(v) for k, v in payload.items() if k not in _KEPT}
    for name in sorted(sizes, key=lambda k: sizes[k], reverse=True):
        size = _json_size(result)
        if size <= max_bytes:
            break
        value = payload[name]
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        # What this field may keep: its share once everything else is counted.
        room = max(0, max_bytes - (size - sizes[name]) - 64)
        budget = room
        cut = _cut(text, budget)
        # JSON escaping (quotes, control characters) can make the cut text longer than `room`.
        while (overflow := _json_size(cut) - room) > 0 and budget > 0:
            budget = max(0, budget - overflow - 16)
            cut = _cut(text, budget)
        result[name] = cut
        marker["fields"].append(name)
    size = _json_size(result)
    if size > max_bytes:
        # Only the kept fields are left and they alone are too big: nothing sane to keep.
        result = {k: v for k, v in result.items() if k in _KEPT}
        marker["fields"] = sorted(set(payload) - _KEPT)
        result[TRUNCATION_MARKER] = marker
        size = _json_size(result)
    return result, size
