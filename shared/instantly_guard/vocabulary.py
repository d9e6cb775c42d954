"""Instantly's vocabulary, one place for the library, the sandbox and the tests: audit activity
types and webhook event types.

What the OpenAPI document states is generated (`_vocabulary_generated.py`, `make scopes`); what
it does not, the names deliveries carry, is written here from Instantly's help pages (FACTS.md):
a webhook subscribed to `email_link_clicked` receives `link_clicked`, `auto_reply_received` is
delivered without being subscribable on its own, and custom lead labels arrive as their text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from instantly_guard._vocabulary_generated import (
    ACTIVITY_DESCRIPTIONS,
    SUBSCRIBABLE_EVENT_TYPES,
    ActivityType,
)

__all__ = [
    "ACTIVITY_DESCRIPTIONS",
    "DELIVERED_AS",
    "DELIVERED_EVENT_TYPES",
    "SUBSCRIBABLE_EVENT_TYPES",
    "SUBSCRIBE_ALL",
    "ActivityType",
]

SUBSCRIBE_ALL: Final = "all_events"
"""The subscription to every event type; never a delivered `event_type`."""

DELIVERED_AS: Final[Mapping[str, str]] = {"email_link_clicked": "link_clicked"}
"""Subscription name -> the `event_type` a delivery carries, where they differ."""

_DELIVERED_ONLY: Final = frozenset({"auto_reply_received"})

DELIVERED_EVENT_TYPES: Final = frozenset(
    {DELIVERED_AS.get(name, name) for name in SUBSCRIBABLE_EVENT_TYPES if name != SUBSCRIBE_ALL}
    | _DELIVERED_ONLY
)
"""Every documented `event_type` a delivery can carry (a custom label is none of these)."""
