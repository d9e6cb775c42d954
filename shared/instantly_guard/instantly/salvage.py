"""Reading an audit entry that does not match `AuditLog`: keep what is known, say what is not.

One odd entry must not stop a page, and with it every export run of the day. A page whose
entries all validate costs nothing extra (the client validates the whole page in one pass and
comes here only when that fails); then each entry is read on its own, and one that still does
not fit becomes a `MalformedAuditLog`:

- the fields that failed are left out of the typed view; `problems` names them with the reason
  (never the value), and `raw` keeps the entry exactly as sent, for the export;
- the fields an export cannot do without get stand-ins, named in `substituted`:
  `id` -> `malformed-` + a hash of the entry's JSON (the same entry gives the same id on every
  run, so Cloud Logging still collapses a re-export); `timestamp` -> the time in its UUIDv7 id
  (Instantly's ids are UUIDv7), else the time it was read (then a re-export cannot be collapsed:
  each copy carries the marker); `activity_type` -> 0 (an unknown activity);
  `organization_id` -> "unknown".

Each malformed entry is logged once per process (a warning naming its id and problems).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from instantly_guard.instantly.models import AuditLog, MalformedAuditLog

_log = logging.getLogger("instantly_guard.instantly")

MALFORMED_ID_PREFIX: Final = "malformed-"
UNKNOWN_ORGANIZATION: Final = "unknown"
_REPORTED_MAX: Final = 10_000


def audit_log(item: Any, *, now: Callable[[], datetime] | None = None) -> AuditLog:
    """`item` as an `AuditLog`, or as a `MalformedAuditLog` when it does not fit. Never raises."""
    try:
        return AuditLog.model_validate(item)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
    entry = _salvage(item, errors, now or (lambda: datetime.now(UTC)))
    _report_once(entry)
    return entry


def _salvage(item: Any, errors: list[Any], now: Callable[[], datetime]) -> MalformedAuditLog:
    raw: dict[str, Any] = dict(item) if isinstance(item, dict) else {"value": item}
    problems = tuple(
        f"{'.'.join(str(part) for part in error['loc']) or '<entry>'}: {error['msg']}"
        for error in errors[:10]
    )
    bad = {str(error["loc"][0]) for error in errors if error["loc"]}
    known = {name: value for name, value in raw.items() if name not in bad}
    substituted: dict[str, str] = {}
    if not isinstance(known.get("id"), str) or not known["id"]:
        known["id"] = MALFORMED_ID_PREFIX + _digest(raw)
        substituted["id"] = "hash of the entry"
    if "timestamp" not in known:
        from_id = uuid7_time(known["id"])
        known["timestamp"] = from_id or now()
        substituted["timestamp"] = "time of its UUIDv7 id" if from_id else "time it was read"
    if "activity_type" not in known:
        known["activity_type"] = 0
        substituted["activity_type"] = "0 (unknown)"
    if "organization_id" not in known:
        known["organization_id"] = UNKNOWN_ORGANIZATION
        substituted["organization_id"] = UNKNOWN_ORGANIZATION
    marker = {"problems": problems, "substituted": substituted, "raw": raw}
    try:
        return MalformedAuditLog.model_validate({**known, **marker})
    except ValidationError:
        # A stand-in itself did not fit (cannot happen for the fields above; an extra field
        # cannot fail): keep only the stand-ins and the raw entry.
        core = {name: known[name] for name in ("id", "timestamp", "activity_type")}
        core["organization_id"] = UNKNOWN_ORGANIZATION
        return MalformedAuditLog.model_validate({**core, **marker})


def _digest(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def uuid7_time(value: str) -> datetime | None:
    """The millisecond time a UUIDv7 carries in its first 48 bits; None for anything else."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
    if parsed.version != 7:
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC)


_reported: OrderedDict[str, None] = OrderedDict()
_reported_lock = threading.Lock()


def _report_once(entry: MalformedAuditLog) -> None:
    # Once per entry per process: a run re-reads overlapping days, a read-ahead may fetch a page
    # twice; the exported entry carries the marker every time anyway.
    with _reported_lock:
        if entry.id in _reported:
            return
        _reported[entry.id] = None
        if len(_reported) > _REPORTED_MAX:
            _reported.popitem(last=False)
    _log.warning(
        "audit entry %s does not match the documented AuditLog (%s); kept with a malformed marker",
        entry.id,
        "; ".join(entry.problems),
        extra={
            "fields": {
                "audit_entry_id": entry.id,
                "problems": list(entry.problems),
                "substituted": entry.substituted,
            }
        },
    )
