"""Small wording helpers shared by the rules and the check's reports."""

from __future__ import annotations

from instantly_guard.detections.model import Event
from instantly_guard.redaction import redact


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def who(event: Event) -> str:
    """A person or key in evidence: names go through redaction (an address becomes a hash)."""
    if event.user_name:
        return redact(event.user_name)
    if event.user_id:
        return f"user {event.user_id}"
    return "unknown user"


def when(event: Event) -> str:
    return f"{event.timestamp:%Y-%m-%d %H:%M} UTC"
