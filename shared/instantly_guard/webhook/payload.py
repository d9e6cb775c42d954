"""Instantly's webhook payloads: parsing, validation, and the deterministic event id.

Instantly documents one payload shape for every event (`timestamp, event_type, workspace,
campaign_id, campaign_name`, then lead, email and reply fields; any extra lead fields arrive as
extra keys). The rules here:

- the body is UTF-8 JSON holding an object, with a non-empty string `event_type` and an ISO-8601
  `timestamp` string (400 otherwise, with a message naming the problem and never echoing data);
- a known event type is validated with the model of its family: present documented fields must
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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, ValidationError

EMAIL_EVENTS: Final = frozenset({"email_sent", "email_opened", "link_clicked", "email_bounced"})
REPLY_EVENTS: Final = frozenset({"reply_received", "auto_reply_received"})
LEAD_EVENTS: Final = frozenset(
    {
        "lead_unsubscribed",
        "lead_neutral",
        "lead_interested",
        "lead_not_interested",
        "lead_meeting_booked",
        "lead_meeting_completed",
        "lead_closed",
        "lead_out_of_office",
        "lead_wrong_person",
        "lead_no_show",
    }
)
CAMPAIGN_EVENTS: Final = frozenset({"campaign_completed"})
ACCOUNT_EVENTS: Final = frozenset({"account_error"})
ENRICHMENT_EVENTS: Final = frozenset({"supersearch_enrichment_completed"})


class PayloadError(ValueError):
    """The body is not an acceptable event. The message is safe to return to the sender."""


class InstantlyEvent(BaseModel):
    """Fields every delivery may carry. Extra keys (lead data) are kept as they came."""

    model_config = ConfigDict(extra="allow", frozen=True)
    custom: ClassVar[bool] = False

    timestamp: str
    event_type: str
    workspace: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    lead_email: str | None = None
    email_account: str | None = None
    step: int | None = None
    variant: int | None = None
    is_first: bool | None = None


class EmailEvent(InstantlyEvent):
    """email_sent, email_opened, link_clicked, email_bounced."""

    email_id: str | None = None
    email_subject: str | None = None
    email_text: str | None = None
    email_html: str | None = None
    unibox_url: str | None = None


class ReplyEvent(EmailEvent):
    """reply_received, auto_reply_received."""

    reply_text_snippet: str | None = None
    reply_subject: str | None = None
    reply_text: str | None = None
    reply_html: str | None = None


class LeadEvent(EmailEvent):
    """Lead status changes (interested, meeting booked, unsubscribed, ...)."""


class CampaignEvent(InstantlyEvent):
    """campaign_completed."""


class AccountEvent(InstantlyEvent):
    """account_error."""


class EnrichmentEvent(InstantlyEvent):
    """supersearch_enrichment_completed."""


class CustomEvent(InstantlyEvent):
    """An event type we do not know (custom lead label or new Instantly event): accepted as is."""

    custom: ClassVar[bool] = True


MODELS: Final[dict[str, type[InstantlyEvent]]] = {
    **dict.fromkeys(EMAIL_EVENTS, EmailEvent),
    **dict.fromkeys(REPLY_EVENTS, ReplyEvent),
    **dict.fromkeys(LEAD_EVENTS, LeadEvent),
    **dict.fromkeys(CAMPAIGN_EVENTS, CampaignEvent),
    **dict.fromkeys(ACCOUNT_EVENTS, AccountEvent),
    **dict.fromkeys(ENRICHMENT_EVENTS, EnrichmentEvent),
}
KNOWN_EVENT_TYPES: Final = frozenset(MODELS)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """An accepted payload: the model, its canonical bytes, and the id derived from them."""

    event: InstantlyEvent
    canonical: bytes
    event_id: str

    @property
    def event_type(self) -> str:
        return self.event.event_type

    @property
    def custom(self) -> bool:
        return self.event.custom


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only: one byte string per JSON value."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def event_id(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


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


def _decode(body: bytes) -> Any:
    if not body.strip():
        raise PayloadError("body is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("body is not UTF-8") from exc
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


def _check_timestamp(value: Any) -> None:
    if value is None:
        raise PayloadError("timestamp is required")
    if not isinstance(value, str):
        raise PayloadError(f"timestamp must be an ISO-8601 string, got {_type_name(value)}")
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError("timestamp is not an ISO-8601 date-time") from exc


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in item["loc"]) or "payload"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_event(body: bytes) -> ParsedEvent:
    """Parse and validate one delivery body. Raises PayloadError with a clear message."""
    document = _decode(body)
    if not isinstance(document, dict):
        raise PayloadError(f"payload must be a JSON object, got {_type_name(document)}")
    event_type = document.get("event_type")
    if event_type is None:
        raise PayloadError("event_type is required")
    if not isinstance(event_type, str) or not event_type.strip():
        raise PayloadError("event_type must be a non-empty string")
    _check_timestamp(document.get("timestamp"))
    model = MODELS.get(event_type, CustomEvent)
    try:
        event = model.model_validate(document)
    except ValidationError as exc:
        # Name the fields and the problems, never the sender's values (event_type included).
        raise PayloadError(f"invalid event fields: {_describe(exc)}") from exc
    try:
        canonical = canonical_json(document)
    except ValueError as exc:  # NaN, Infinity, or a number too large for a float (1e999)
        raise PayloadError(
            "body is not valid JSON: NaN and infinite numbers are not allowed"
        ) from exc
    except RecursionError as exc:
        raise PayloadError("body is not valid JSON: nested too deeply") from exc
    return ParsedEvent(event=event, canonical=canonical, event_id=event_id(canonical))
