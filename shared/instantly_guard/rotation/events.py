"""Decoding the Pub/Sub messages the rotation function receives.

The function is an HTTP function fed by a Pub/Sub push subscription (terraform/pubsub.tf), which
POSTs the bare push envelope

    {"message": {"attributes"?: {...}, "data"?: "<base64>", "messageId": "...",
                 "publishTime": "..."}, "subscription": "..."}

where empty fields are *omitted* (proto3 JSON): Secret Manager's TOPIC_CONFIGURED has no `data`,
a message may have no `attributes`. `decode_push` reads that envelope, and also the two
CloudEvent forms of the same message (`google.cloud.pubsub.topic.v1.messagePublished`, binary or
structured mode: what an Eventarc trigger or a hand-made test request sends). functions-framework's
own conversion is not used: it turns a push into a CloudEvent only when `message.data` is present
and answers 400 otherwise, which the subscription retries into the dead-letter topic.

Two senders publish to the rotation topic:
- Secret Manager: attributes `eventType` (SECRET_ROTATE, SECRET_VERSION_ADD, ...), `secretId`
  (`projects/P/secrets/NAME`), `dataFormat`, `timestamp`; the data is the secret's metadata as
  JSON, never a value. Only SECRET_ROTATE is acted on. Every other event type is what our own
  writes cause (adding a version publishes SECRET_VERSION_ADD), and TOPIC_CONFIGURED has no
  secretId: they are acknowledged and ignored, so rotating never triggers itself.
- Cloud Scheduler, for the sweep: attribute `instantlyGuard: sweep` and/or data
  `{"action": "sweep"}` (either is enough).

Anything else is `Ignored`; a message that cannot be decoded is `Ignored(malformed=True)`: the
function logs it and acknowledges it, because redelivering it can never make it valid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

PUBSUB_EVENT_TYPE: Final = "google.cloud.pubsub.topic.v1.messagePublished"
SWEEP_ATTRIBUTE: Final = "instantlyGuard"
SWEEP_VALUE: Final = "sweep"
# A regional secret's id carries its location: `projects/P/locations/L/secrets/S`.
_SECRET_ID = re.compile(
    r"^projects/(?P<project>[^/]+)(?:/locations/(?P<location>[a-z0-9-]{1,63}))?"
    r"/secrets/(?P<name>[A-Za-z0-9_-]{1,255})$"
)
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class RotateRequest:
    """Rotate `secret` because Secret Manager said it is due (`SECRET_ROTATE`)."""

    secret: str
    project: str
    event_time: datetime
    message_id: str
    location: str | None = None  # a regional secret's location; None: a global secret
    publish_time: datetime | None = None  # set by Pub/Sub, not by the publisher

    @property
    def rotation_id(self) -> str:
        """Deterministic per event: every delivery of one SECRET_ROTATE names the same rotation,
        and so the same Instantly key name."""
        where = self.project if self.location is None else f"{self.project}/{self.location}"
        digest = hashlib.sha256(
            f"{where}/{self.secret}/{self.event_time.isoformat()}".encode()
        ).hexdigest()[:6]
        return f"{self.event_time:%Y%m%dt%H%M%S}-{digest}"


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """Finish due revocations and destructions of every managed secret."""

    message_id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str
    malformed: bool = False
    event_type: str | None = None


Decoded = RotateRequest | SweepRequest | Ignored


def parse_time(text: Any) -> datetime | None:
    """RFC 3339 as Google writes it (`Z`, up to nanoseconds) -> aware datetime, or None (also for
    anything that is not a string)."""
    if not text or not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def decode_message(message: Mapping[str, Any]) -> Decoded:
    """Decode one Pub/Sub message (`{"attributes", "data", "messageId", "publishTime"}`)."""
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        return Ignored("attributes is not an object", malformed=True)
    message_id = _text(message.get("messageId") or message.get("message_id"))
    body = _data(message.get("data"))
    if isinstance(body, Ignored):
        return body

    if attributes.get(SWEEP_ATTRIBUTE) == SWEEP_VALUE or (
        isinstance(body, Mapping) and body.get("action") == SWEEP_VALUE
    ):
        return SweepRequest(message_id=message_id)

    event_type = attributes.get("eventType")
    if not event_type:
        return Ignored("neither a Secret Manager event nor a sweep", malformed=True)
    if event_type != "SECRET_ROTATE":
        return Ignored(f"{event_type} needs no action", event_type=str(event_type))
    secret_id = str(attributes.get("secretId") or "")
    match = _SECRET_ID.fullmatch(secret_id)
    if match is None:
        return Ignored("SECRET_ROTATE without a valid secretId", malformed=True)
    stamp = attributes.get("timestamp")
    if stamp is not None and not isinstance(stamp, str):
        # Pub/Sub attributes are strings; a number here was not written by Secret Manager.
        return Ignored("SECRET_ROTATE timestamp is not a string", malformed=True)
    published = parse_time(message.get("publishTime"))
    when = parse_time(stamp) or published
    if when is None:
        return Ignored("SECRET_ROTATE without a timestamp", malformed=True)
    return RotateRequest(
        secret=match.group("name"),
        project=match.group("project"),
        event_time=when,
        message_id=message_id,
        location=match.group("location"),
        publish_time=published,
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP request to the rotation function, decoded: the message and its delivery id
    (the CloudEvent id, else the Pub/Sub messageId; for logs only)."""

    decoded: Decoded
    event_id: str = ""


def decode_push(headers: Mapping[str, str], body: bytes) -> Delivery:
    """Decode one request in any shape it can arrive in (module docstring). Never raises: what
    cannot be read is `Ignored(malformed=True)`, because redelivering it cannot make it valid."""
    try:
        return _decode_push(headers, body)
    except (RecursionError, ValueError, TypeError, AttributeError) as exc:
        # The shapes above are read tolerantly; this is the net under them (JSON nested deeper
        # than the parser goes, a value of a type no sender writes). An answer other than 2xx
        # would only ride retries into the dead-letter topic.
        return Delivery(Ignored(f"unreadable message ({type(exc).__name__})", malformed=True))


def _loads(raw: str | bytes | bytearray) -> Any:
    """`json.loads`, with nesting deeper than the parser goes read as not JSON."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _decode_push(headers: Mapping[str, str], body: bytes) -> Delivery:
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    if "ce-specversion" in lower:  # binary mode: the attributes in headers, the data is the body
        return Delivery(decode_cloud_event(lower.get("ce-type"), body), lower.get("ce-id", ""))
    try:
        document = _loads(body) if body.strip() else None
    except ValueError:
        return Delivery(Ignored("request body is not JSON", malformed=True))
    if not isinstance(document, Mapping):
        return Delivery(Ignored("request body is not a JSON object", malformed=True))
    media = lower.get("content-type", "").partition(";")[0].strip(" \t").lower()
    if media == "application/cloudevents+json" or "specversion" in document:
        data: Any = document.get("data")
        if "data_base64" in document:
            data = _base64_bytes(document.get("data_base64"))
        event_type = document.get("type")
        return Delivery(
            decode_cloud_event(str(event_type) if event_type is not None else None, data),
            _text(document.get("id")),
        )
    message = document.get("message")
    if not isinstance(message, Mapping):
        return Delivery(Ignored("neither a Pub/Sub push nor a CloudEvent", malformed=True))
    return Delivery(decode_message(message), _text(message.get("messageId")))


def _base64_bytes(raw: Any) -> bytes | None:
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None


def decode_cloud_event(event_type: str | None, data: Any) -> Decoded:
    """Decode the CloudEvent a Pub/Sub trigger delivers (its `type` and `data`)."""
    if event_type is not None and event_type != PUBSUB_EVENT_TYPE:
        return Ignored(f"unexpected CloudEvent type {event_type!r}", malformed=True)
    if isinstance(data, bytes | bytearray):
        try:
            data = _loads(data)
        except ValueError:
            return Ignored("CloudEvent data is not JSON", malformed=True)
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        return Ignored("CloudEvent data has no Pub/Sub message", malformed=True)
    return decode_message(data["message"])


def _data(raw: Any) -> Mapping[str, Any] | str | Ignored | None:
    """The message body: base64 as Pub/Sub sends it, decoded and parsed as JSON when it is."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        return Ignored("message data is not a base64 string", malformed=True)
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
        return Ignored("message data is not valid base64 UTF-8", malformed=True)
    try:
        parsed = _loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, Mapping) else text
