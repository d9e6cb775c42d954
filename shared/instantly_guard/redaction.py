"""Masking of secrets and personal data in text that leaves the process (logs, error bodies).

Three rules, applied in order:
1. every value registered here (each `Secret` registers itself) is replaced by `***`;
2. anything that looks like a bearer credential (`Bearer xyz`, `Basic xyz`) loses its token;
3. email addresses become `email:<sha256 prefix>`, stable so that one lead can still be followed
   across records without the address itself being stored in Cloud Logging.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Final

_MIN_LENGTH: Final = 6  # shorter values would mask ordinary words and numbers
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Add `value` to the set that is always masked. Short values are ignored (see _MIN_LENGTH)."""
    global _pattern
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


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
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: hash_email(m.group(0)), text)
    return text
