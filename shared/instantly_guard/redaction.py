"""Masking of secrets and personal data in text that leaves the process (logs, error bodies).

Three rules, applied in order:
1. every value registered here (each `Secret` registers itself) is replaced by `***`;
2. anything that looks like a bearer credential (`Bearer xyz`, `Basic xyz`) loses its token;
3. email addresses become `email:<sha256 prefix>`, stable so that one lead can still be followed
   across records without the address itself being stored in Cloud Logging.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Final

_MIN_LENGTH: Final = 6  # shorter values would mask ordinary words and numbers
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
# The same values as they appear inside JSON text (escaped, with and without ensure_ascii).
_json_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Add `value` to the set that is always masked. Short values are ignored (see _MIN_LENGTH)."""
    global _pattern, _json_pattern
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))
        encoded = {json.dumps(v, ensure_ascii=a)[1:-1] for v in ordered for a in (True, False)}
        _json_pattern = re.compile("|".join(re.escape(v) for v in encoded))


def hash_email(address: str) -> str:
    """A stable, non-reversible stand-in for an email address."""
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]
    return f"email:{digest}"


def redact(text: str) -> str:
    """Return `text` with registered secrets, bearer tokens and email addresses masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub("***", text)
    # Cheap substring tests first: this runs on every log line, and the email pattern backtracks
    # badly over long runs of id-like characters (UUIDs, hex digests) that hold no "@".
    if _may_hold_scheme(text):
        text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: hash_email(m.group(0)), text)
    return text


def _may_hold_scheme(text: str) -> bool:
    # Case-insensitive matching also folds a few non-ASCII letters (long s, U+017F, matches "s"), which
    # str.lower() does not: non-ASCII text always goes through the regex.
    lowered = text.lower()
    return "bearer" in lowered or "basic" in lowered or not text.isascii()


def json_is_clean(document: str) -> bool:
    """Whether `redact` would leave every string (key or value) in the JSON text unchanged.

    Conservative: it may answer False for a clean document, never True for one holding something
    to mask. Each rule needs a marker that JSON keeps visible: an "@", the word bearer or basic
    (any non-ASCII text counts as a possible one), or a registered value, searched for in its
    JSON-escaped form (escaping works character by character, so a string that contains a value
    encodes to text that contains the value's encoding). Lets a log formatter scan a whole line
    once instead of every string in it.
    """
    pattern = _json_pattern
    if pattern is not None and pattern.search(document):
        return False
    return "@" not in document and not _may_hold_scheme(document)
