"""Webhook-secret versions as the rotation writes them, in the receiver's format.

The format is defined (and parsed) by `instantly_guard.webhook.secrets`: a version holds one
secret as plain text or, during a rotation's grace period,
`{"current": new, "previous": old, "previous_expires_at": end of grace}`, so a receiver
mounting `latest` knows every secret Instantly may send. This module writes through that
module's own formatter and reads through its parser, so writer and reader cannot drift apart.
"""

from __future__ import annotations

import secrets as _random
from datetime import datetime
from typing import Final

from instantly_guard.secret import Secret

# The format module is imported where used: importing it loads the webhook package (the whole
# receiver), which an API-key rotation never needs.

MIN_BYTES: Final = 32


def generate() -> Secret:
    """A fresh webhook secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return Secret(_random.token_urlsafe(MIN_BYTES))


def single(current: Secret) -> Secret:
    """A version accepting only `current`."""
    from instantly_guard.webhook.secrets import format_secret_payload

    return Secret(format_secret_payload(current.reveal()))


def combined(current: Secret, previous: Secret, previous_expires_at: datetime) -> Secret:
    """A version accepting `current`, and `previous` until `previous_expires_at`."""
    from instantly_guard.webhook.secrets import format_secret_payload

    return Secret(format_secret_payload(current.reveal(), previous.reveal(), previous_expires_at))


def current_of(payload: Secret) -> Secret:
    """The secret Instantly should be sending, from either payload form (ValueError if neither;
    the message never contains a value)."""
    from instantly_guard.webhook.secrets import parse_secret_payload

    return parse_secret_payload(payload.reveal()).current
