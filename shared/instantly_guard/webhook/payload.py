"""Instantly's webhook payloads: parsing, validation, and the deterministic event id.

Instantly documents one payload shape for every event (`timestamp, event_type, workspace,
campaign_id, campaign_name`, then lead, email and reply fields; any extra lead fields arrive as
extra keys). The rules here:

- the body is UTF-8 JSON holding an object, with a non-empty string `event_type` and an ISO-8601
  `timestamp` string (400 otherwise, with a message naming the problem and never echoing data);
- a known event type is validated against the documented fields of its family (`FAMILIES`): present documented fields must
  have their documented types (a `step` of "two" is rejected; "2" is read as 2). Documented fields may
  be absent or null: a 400 is final for Instantly, which would retry and then switch the webhook
  off, so only a structurally wrong payload is refused;
- extra fields are kept (they are the customer's lead data);
- an unknown `event_type` (a custom lead label, a new Instantly event) is accepted and marked
  custom, never rejected.

The event id is the SHA-256 of the payload's canonical JSON (keys sorted, no insignificant
whitespace, non-ASCII escaped), so the same event delivered twice has the same id whatever
spacing or key order the sender used. Instantly sends no id of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from instantly_guard.errors import GuardError
from instantly_guard.jsontext import encoder
from instantly_guard.vocabulary import DELIVERED_EVENT_TYPES
from instantly_guard.webhook.fastjson import decode_canonical

EMAIL_EVENTS: Final = frozenset({"email_sent", "email_opened", "link_clicked", "email_bounced"})
REPLY_EVENTS: Final = frozenset({"reply_received", "auto_reply_received"})
# Every lead status change Instantly documents (`lead_interested`, `lead_meeting_booked`, ...).
LEAD_EVENTS: Final = frozenset(t for t in DELIVERED_EVENT_TYPES if t.startswith("lead_"))
CAMPAIGN_EVENTS: Final = frozenset({"campaign_completed"})
ACCOUNT_EVENTS: Final = frozenset({"account_error"})
ENRICHMENT_EVENTS: Final = frozenset({"supersearch_enrichment_completed"})


class PayloadError(GuardError, ValueError):
    """The body is not an acceptable event. The message is safe to return to the sender."""


# The documented fields of each family and their types. Read leniently, as Instantly's own
# serializer may: an integer may arrive as "2" or 2.0, a boolean as 0/1 or "true"/"false"; a
# field may be absent or null. Anything else (a `step` of "two", a list as `lead_email`) is a 400.
_STR, _INT, _BOOL = "a string", "an integer", "a boolean"
_COMMON: Final = {
    "workspace": _STR,
    "campaign_id": _STR,
    "campaign_name": _STR,
    "lead_email": _STR,
    "email_account": _STR,
    "step": _INT,
    "variant": _INT,
    "is_first": _BOOL,
}
_EMAIL: Final = {
    **_COMMON,
    "email_id": _STR,
    "email_subject": _STR,
    "email_text": _STR,
    "email_html": _STR,
    "unibox_url": _STR,
}
_REPLY: Final = {
    **_EMAIL,
    "reply_text_snippet": _STR,
    "reply_subject": _STR,
    "reply_text": _STR,
    "reply_html": _STR,
}
FAMILIES: Final[dict[str, dict[str, str]]] = {
    "email": _EMAIL,
    "reply": _REPLY,
    "lead": _REPLY,  # a status set by a reply carries that reply (real deliveries)
    "campaign": _COMMON,
    "account": _COMMON,
    "enrichment": _COMMON,
    "custom": _COMMON,  # an event type we do not know (a custom lead label, a new event)
}
FAMILY_OF: Final[dict[str, str]] = {
    **dict.fromkeys(EMAIL_EVENTS, "email"),
    **dict.fromkeys(REPLY_EVENTS, "reply"),
    **dict.fromkeys(LEAD_EVENTS, "lead"),
    **dict.fromkeys(CAMPAIGN_EVENTS, "campaign"),
    **dict.fromkeys(ACCOUNT_EVENTS, "account"),
    **dict.fromkeys(ENRICHMENT_EVENTS, "enrichment"),
}
KNOWN_EVENT_TYPES: Final = frozenset(FAMILY_OF)
# Per family: its string fields, and its other fields with their kinds and the type that needs
# no reading (an integer field holding an int, a boolean field a bool).
_KINDS: Final = {
    family: (
        frozenset(key for key, kind in documented.items() if kind is _STR),
        tuple(
            (key, kind, int if kind is _INT else bool)
            for key, kind in documented.items()
            if kind is not _STR
        ),
    )
    for family, documented in FAMILIES.items()
}
_STRING_OR_NULL: Final = frozenset({str, type(None)})
_OWN_KEYS: Final = frozenset({"event_type", "timestamp"})
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})


class InstantlyEvent(NamedTuple):  # a tuple: built on every delivery, several times cheaper
    """One accepted delivery: its type and family, the documented fields it carried (read as
    their documented types), and every other key as it came (the customer's lead data).

    It holds the validated document and the three documented string fields every delivery's
    attributes and log line read; `fields` and `extra` are built when asked for (nothing on a
    delivery's path asks)."""

    event_type: str
    timestamp: str
    family: str
    document: Mapping[str, Any]
    # The document's own values (documented as strings in every family: validated to be a string
    # or null), taken once by `_validate`, the one place an event is made.
    workspace: str | None
    campaign_id: str | None
    lead_email: str | None

    @property
    def fields(self) -> dict[str, Any]:
        documented = FAMILIES[self.family]
        return {
            key: value if value is None else _read(value, documented[key])
            for key, value in self.document.items()
            if key in documented
        }

    @property
    def extra(self) -> dict[str, Any]:
        documented = FAMILIES[self.family]
        return {
            key: value
            for key, value in self.document.items()
            if key not in documented and key not in _OWN_KEYS
        }

    @property
    def custom(self) -> bool:
        return self.family == "custom"


def _as_int(value: Any) -> int | None:
    if isinstance(value, int):  # bool included: True is 1
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and len(text) <= 20:
            return int(text)
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _read(value: Any, kind: str) -> Any:
    """`value` read as `kind`, or None when it is not one."""
    if kind is _STR:
        return value if isinstance(value, str) else None
    if kind is _INT:
        return _as_int(value)
    return _as_bool(value)


def _problems(document: Mapping[str, Any], documented: Mapping[str, str]) -> list[str]:
    """What is wrong with the documented fields of `document`, in its order."""
    problems = []
    for key, value in document.items():
        kind = documented.get(key)
        if kind is None or value is None or _read(value, kind) is not None:
            continue
        # Name the field and what it must be, never the sender's value.
        problems.append(f"{key}: must be {kind}, got {_type_name(value)}")
    return problems


def _validate(document: dict[str, Any], event_type: str, timestamp: str) -> InstantlyEvent:
    family = FAMILY_OF.get(event_type, "custom")
    strings, others = _KINDS[family]
    # Most documented fields are strings: the types of those present are gathered at C speed
    # (this runs on every delivery); the few others are read one by one.
    present = strings.intersection(document)
    valid = _STRING_OR_NULL.issuperset(map(type, map(document.__getitem__, present)))
    for key, kind, exact in others:
        value = document.get(key)
        # A value of the documented type itself (what Instantly sends) needs no reading.
        if value is not None and type(value) is not exact and _read(value, kind) is None:
            valid = False
    if not valid:
        problems = _problems(document, FAMILIES[family])
        raise PayloadError(f"invalid event fields: {'; '.join(problems)}")
    get = document.get
    return InstantlyEvent(
        event_type,
        timestamp,
        family,
        document,
        get("workspace"),
        get("campaign_id"),
        get("lead_email"),
    )


class ParsedEvent(NamedTuple):
    """An accepted payload: the event, its canonical bytes, and the id derived from them."""

    event: InstantlyEvent
    canonical: bytes
    event_id: str

    @property
    def event_type(self) -> str:
        return self.event.event_type

    @property
    def custom(self) -> bool:
        return self.event.custom


_canonical: Final = encoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only: one byte string per JSON value."""
    return _canonical(document).encode("ascii")


# hashlib lets other threads run while it hashes 2 KiB or more. Below 64 KiB the hash takes a few
# microseconds, less than handing the interpreter to another thread and waiting to get it back
# (under a threaded server there always is one waiting): such bodies are hashed in pieces that
# keep it.
_HASH_PIECE: Final = 2047
_HASH_IN_PIECES_BELOW: Final = 64 * 1024


def event_id(canonical: bytes) -> str:
    if len(canonical) >= _HASH_IN_PIECES_BELOW:
        return hashlib.sha256(canonical).hexdigest()
    digest = hashlib.sha256()
    view = memoryview(canonical)
    for start in range(0, len(view), _HASH_PIECE):
        digest.update(view[start : start + _HASH_PIECE])
    return digest.hexdigest()


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


# The decoding `json.loads` ends in, without the layer above it and its two whitespace matches:
# an object from its first character to its last is what every delivery is. Anything else, and
# any error, goes through `json.loads`, for the same result and the same message.
_raw_decode: Final = json.JSONDecoder().raw_decode


def _decode(body: bytes) -> Any:
    if not body or body.isspace():  # as `not body.strip()`, without copying the body
        raise PayloadError("body is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("body is not UTF-8") from exc
    if text[:1] == "{" and text[-1:] == "}":  # a delivery: straight to the decoder
        try:
            document, end = _raw_decode(text, 0)
        except (ValueError, RecursionError):
            pass  # json.loads below says what is wrong
        else:
            if end == len(text):
                return document
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except ValueError as exc:  # e.g. an integer longer than Python's 4300-digit conversion limit
        raise PayloadError("body is not valid JSON: number too long") from exc
    except RecursionError as exc:
        raise PayloadError("body is not valid JSON: nested too deeply") from exc


def _check_timestamp(value: Any) -> str:
    if value is None:
        raise PayloadError("timestamp is required")
    if not isinstance(value, str):
        raise PayloadError(f"timestamp must be an ISO-8601 string, got {_type_name(value)}")
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError("timestamp is not an ISO-8601 date-time") from exc
    return value


def parse_event(body: bytes) -> ParsedEvent:
    """Parse and validate one delivery body. Raises PayloadError with a clear message."""
    fast = decode_canonical(body)  # the same document and bytes as below, when it answers
    if fast is None:
        document, canonical = _decode(body), None
    else:
        document, canonical = fast
    if not isinstance(document, dict):
        raise PayloadError(f"payload must be a JSON object, got {_type_name(document)}")
    event_type = document.get("event_type")
    if event_type is None:
        raise PayloadError("event_type is required")
    if not isinstance(event_type, str) or not event_type.strip():
        raise PayloadError("event_type must be a non-empty string")
    timestamp = _check_timestamp(document.get("timestamp"))
    event = _validate(document, event_type, timestamp)
    if canonical is not None:
        return ParsedEvent(event=event, canonical=canonical, event_id=event_id(canonical))
    try:
        canonical = canonical_json(document)
    except ValueError as exc:  # NaN, Infinity, or a number too large for a float (1e999)
        raise PayloadError(
            "body is not valid JSON: NaN and infinite numbers are not allowed"
        ) from exc
    except RecursionError as exc:
        raise PayloadError("body is not valid JSON: nested too deeply") from exc
    return ParsedEvent(event=event, canonical=canonical, event_id=event_id(canonical))
