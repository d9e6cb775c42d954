"""A missed payload -> the message the receiver would have published for it.

The receiver's own functions make the message (`webhook.payload.parse_event` for the canonical
data and the deterministic event id, `webhook.handler.message_attributes` for the attributes),
so a republished event is byte-for-byte the data of a delivered one, with the same `event_id`:
consumers (and the local outbox) drop whichever copy comes second. Two attributes are added:
`reconciled=true` and `delivery_id` (the id of Instantly's delivery record), and
`auth_refused=true` when our receiver had refused the delivery for authentication
(`attribution`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from instantly_guard.webhook.handler import message_attributes
from instantly_guard.webhook.payload import PayloadError, parse_event


@dataclass(frozen=True, slots=True)
class Message:
    event_id: str
    data: bytes
    attributes: Mapping[str, str]


def message_for(
    payload: Mapping[str, Any],
    delivery_id: str,
    at: datetime,
    extra: Mapping[str, str] | None = None,
) -> Message:
    """The message for `payload` (plus `extra` attributes); raises PayloadError when the
    receiver would refuse it too."""
    try:
        body = json.dumps(payload, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PayloadError("payload is not valid JSON: NaN and infinite numbers") from exc
    parsed = parse_event(body)
    attributes = message_attributes(parsed, at)
    attributes["reconciled"] = "true"
    attributes["delivery_id"] = delivery_id[:1024]
    attributes.update(extra or {})
    return Message(parsed.event_id, parsed.canonical, attributes)
