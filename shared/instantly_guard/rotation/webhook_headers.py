"""Which header values the webhook-secret rotation may write back to Instantly.

`PATCH /webhooks/{id}` replaces the whole `headers` object, so switching our header means
sending the others too, and the only copy of them is what `GET /webhooks/{id}` answers. Whether
Instantly answers header values raw or masked is not documented. A masked value written back
would replace the real one (breaking whatever checks that header), so a read is trusted only
when nothing in it looks masked and our own header holds a secret we know (the new one, or one
being retired). An untrusted read is never copied: with no other header, the PATCH carries ours
alone; with other headers, the rotation refuses (permanently: a person must set them).

Header names are compared case-insensitively (HTTP names are; setup scripts register
`X-Webhook-Secret` where we default to `x-webhook-secret`). Every spelling of ours is replaced by
one entry, so a webhook holding our header twice in two cases is repaired to one: Instantly's
sender (axios on Node) keeps one value per name, and which one is not ours to guess.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Final

from instantly_guard.rotation.errors import RotationError
from instantly_guard.secret import Secret

# Masks seen in APIs: runs of `*`, `•` or `x`, an ellipsis, "redacted"/"hidden".
_MASKED: Final = re.compile(r"\*{3,}|•{2,}|…|x{6,}|redacted|hidden", re.IGNORECASE)


def looks_masked(value: str) -> bool:
    return bool(_MASKED.search(value))


def ours(headers: Mapping[str, str], header: str) -> list[str]:
    """The values of every spelling of `header` in `headers`, in their order."""
    wanted = header.lower()
    return [value for name, value in headers.items() if name.lower() == wanted]


def holds_only(headers: Mapping[str, str], header: str, value: str) -> bool:
    """Whether `header` appears exactly once (in any case), holding `value`."""
    return ours(headers, header) == [value]


def trusted(headers: Mapping[str, str], header: str, known: Collection[str]) -> bool:
    """Whether `headers` (as read) are the real values: each spelling of ours holds a secret
    we know, and no value looks masked."""
    if any(value not in known for value in ours(headers, header)):
        return False
    return not any(looks_masked(value) for value in headers.values())


def patched(
    webhook_id: str, headers: Mapping[str, str], header: str, new: Secret, known: Collection[str]
) -> dict[str, str | Secret]:
    """The `headers` to PATCH: the others as read when the read is trusted, else ours alone
    (RotationError, not retryable, when other headers would be lost)."""
    wanted = header.lower()
    if trusted(headers, header, known):
        return {**{k: v for k, v in headers.items() if k.lower() != wanted}, header: new}
    others = sorted(k for k in headers if k.lower() != wanted)
    if others:
        raise RotationError(
            f"webhook {webhook_id}: its header values read back masked (or {header} holds a "
            f"secret this rotation does not know), and it has other headers ({', '.join(others)}) "
            "that a PATCH must repeat: writing the masked text back would replace them. Set the "
            "headers by hand, or move the other headers off this webhook",
            retryable=False,
        )
    return {header: new}
