"""A detect-secrets plugin for Instantly API keys, in the shape real keys leak in.

A real Instantly v2 key is the base64 of `<UUIDv4>:<12 alphanumerics>`: 68 characters ending in
`==`. detect-secrets' generic rules need quotes or an assignment (`KEY = "..."`), so a key in a
markdown `Authorization: Bearer <key>` line, a `curl` script or prose goes unseen, and the
entropy rule's limit drops many. This plugin matches the shape itself, on any line of any file,
and confirms it by decoding: only a UUID (version 4), a colon and 12 alphanumerics count, so
other base64 of that length (hashes, images) does not.

The repository scan runs it beside detect-secrets' own plugins (`check.gitrepo`). It is also a
plugin detect-secrets loads by itself:
`detect-secrets scan --plugin "$(python -c 'import instantly_guard.check.instantly_key as m;
print(m.__file__)')"`. It imports nothing of ours for that reason.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Generator, Iterator
from typing import Final

from detect_secrets.plugins.base import RegexBasedDetector

SECRET_TYPE: Final = "Instantly API Key"  # noqa: S105 - a finding kind, not a secret

# 66 base64 characters and `==`, not part of a longer base64 run.
_CANDIDATE: Final = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{66}==(?![A-Za-z0-9+/=])")
_BASE64: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_DECODED: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}:[A-Za-z0-9]{12}",
    re.IGNORECASE,
)


def is_instantly_key(text: str) -> bool:
    """Whether `text` is exactly a key in Instantly's format."""
    if len(text) != 68 or not _CANDIDATE.fullmatch(text):
        return False
    try:
        decoded = base64.b64decode(text, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(_DECODED.fullmatch(decoded))


def find_keys(text: str) -> Iterator[str]:
    """Every Instantly-format key in `text` (a line or a whole file)."""
    for key, _ in find_keys_at(text):
        yield key


def find_keys_at(text: str) -> Iterator[tuple[str, int]]:
    """Every Instantly-format key in `text`, with its offset.

    Anchored on each `==`: `str.find` skips the text in C, and only the 68 characters before
    each padding are matched (a pattern scanned over every position of a large file costs
    many times more)."""
    end = text.find("==", 66)
    while end >= 0:
        start = end - 66
        match = _CANDIDATE.match(text, start, end + 2)
        # Not part of a longer base64 run: nothing of it before, no character of it (or more
        # padding) after; `KEY=<key>` is fine.
        alone = (start == 0 or text[start - 1] not in _BASE64) and (
            end + 2 == len(text) or (text[end + 2] not in _BASE64 and text[end + 2] != "=")
        )
        if match is not None and alone and is_instantly_key(match.group(0)):
            yield match.group(0), start
        end = text.find("==", end + 1)


class InstantlyKeyDetector(RegexBasedDetector):
    """Scans for Instantly API keys (base64 of `<UUIDv4>:<12 alphanumerics>`)."""

    secret_type = SECRET_TYPE
    denylist = (_CANDIDATE,)

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        yield from find_keys(string)
