"""Webhook-secret versions as the rotation writes them, in the receiver's format.

The format is defined (and parsed) by `instantly_guard.webhook.secrets`: a version holds one
secret as plain text or, during a rotation's grace period,
`{"current": new, "previous": old, "previous_expires_at": end of grace, "older": [...]}`, so a
receiver mounting `latest` knows every secret Instantly may send. `older` holds the secrets of
earlier rotations whose own grace has not ended (a rotation inside another's grace period): each
stays accepted for its full grace, never cut short by a later rotation or by the settle step.
This module writes through that module's own formatter and reads through its parser, so writer
and reader cannot drift apart.
"""

from __future__ import annotations

import secrets as _random
from datetime import datetime
from typing import TYPE_CHECKING, Final

from instantly_guard.secret import Secret

if TYPE_CHECKING:
    from instantly_guard.webhook.secrets import Retiring, SecretVersion

# The format module is imported where used: importing it loads the webhook package (the whole
# receiver), which an API-key rotation never needs.

MIN_BYTES: Final = 32
MAX_RETIRING: Final = 64
"""Retired secrets one version keeps at most (newest first): ~100 bytes each, far below Secret
Manager's 64 KiB per version. Only rotations more frequent than grace/64 ever reach it; the
oldest are then dropped before their grace ends (`carried` says how many)."""


def generate() -> Secret:
    """A fresh webhook secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return Secret(_random.token_urlsafe(MIN_BYTES))


def single(current: Secret) -> Secret:
    """A version accepting only `current`."""
    from instantly_guard.webhook.secrets import format_secret_payload

    return Secret(format_secret_payload(current.reveal()))


def combined(current: Secret, retiring: tuple[Retiring, ...]) -> Secret:
    """A version accepting `current`, and each retiring secret until its own expiry (the first
    is `previous`); `single(current)` when none is left."""
    from instantly_guard.webhook.secrets import format_secret_payload

    if not retiring:
        return single(current)
    head, *rest = retiring
    return Secret(
        format_secret_payload(
            current.reveal(),
            head.secret.reveal(),
            head.expires_at,
            [(r.secret.reveal(), r.expires_at) for r in rest],
        )
    )


def parse(payload: Secret) -> SecretVersion:
    """Either payload form (ValueError if neither; the message never contains a value)."""
    from instantly_guard.webhook.secrets import parse_secret_payload

    return parse_secret_payload(payload.reveal())


def current_of(payload: Secret) -> Secret:
    """The secret Instantly should be sending, from either payload form."""
    return parse(payload).current


def carried(
    payload: Secret, new_previous: Secret, expires_at: datetime, now: datetime
) -> tuple[tuple[Retiring, ...], int]:
    """The retiring secrets of a rotation replacing `payload`'s current secret (`new_previous`,
    until `expires_at`) at `now`: that one first, then every secret `payload` still accepts at
    `now` with its own expiry, newest first, at most `MAX_RETIRING`. Also how many still-valid
    ones the bound dropped (0 normally)."""
    from instantly_guard.webhook.secrets import Retiring

    version = parse(payload)
    seen = {new_previous.reveal()}
    kept = [Retiring(new_previous, expires_at)]
    for item in version.retiring:
        if now < item.expires_at and item.secret.reveal() not in seen:
            seen.add(item.secret.reveal())
            kept.append(item)
    return tuple(kept[:MAX_RETIRING]), max(0, len(kept) - MAX_RETIRING)


def pruned(payload: Secret, now: datetime, *, drop_all: bool = False) -> Secret | None:
    """`payload` without the secrets whose grace has ended at `now` (every retired one with
    `drop_all`); None when there is nothing to drop."""
    version = parse(payload)
    alive = () if drop_all else tuple(r for r in version.retiring if now < r.expires_at)
    if len(alive) == len(version.retiring):
        return None
    return combined(version.current, alive)
