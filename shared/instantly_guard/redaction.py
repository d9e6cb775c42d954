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

# How the registered values are found in a line without one pattern of all of them (which made
# every registration recompile it, quadratic in the values seen, and every line cost time in
# proportion to them). Every value is at least _MIN_LENGTH long, so an occurrence starting at p
# covers p .. p+5, and among any _STEP consecutive positions one is a multiple of _STEP: the
# _GRAM characters there are the value's characters at an offset 0 .. _STEP-1. Indexing each
# value by those _STEP grams and looking up the line's grams at multiples of _STEP only finds
# every occurrence's start (exactly, as a candidate), at a cost set by the line's length alone.
_GRAM: Final = 3
_STEP: Final = _MIN_LENGTH - _GRAM + 1
# Up to this many values, a substring test of each (C speed) is cheaper than probing the grams:
# the usual process (a webhook receiver holding one secret) pays well under a microsecond a line.
_FEW: Final = 16


class _Index:
    """Values findable in text in time independent of how many there are; adding one is O(1).

    Same result as an alternation of every value, longest first: the leftmost occurrence wins,
    the longest value at that position is taken whole, and the search resumes after it.
    """

    __slots__ = ("_few", "_grams", "_lengths", "_values")

    def __init__(self) -> None:
        self._values: set[str] = set()
        # Every value while there are at most _FEW, then None (the grams alone answer).
        self._few: tuple[str, ...] | None = ()
        # gram -> the offsets (within the first _STEP characters of some value) where it occurs.
        self._grams: dict[str, frozenset[int]] = {}
        # first _MIN_LENGTH characters -> the lengths of the values starting with them, longest
        # first: checking a candidate costs one set lookup per distinct length, however many
        # values share a head (keys often share a prefix such as "key_live_").
        self._lengths: dict[str, tuple[int, ...]] = {}

    def add(self, value: str) -> None:
        """Add `value` (at least _MIN_LENGTH long). Callers serialise adds; readers need no lock:
        they only look up, and what they iterate is replaced whole, never changed in place."""
        if value in self._values:
            return
        self._values.add(value)
        if self._few is not None:
            self._few = (*self._few, value) if len(self._few) < _FEW else None
        head = value[:_MIN_LENGTH]
        lengths = self._lengths.get(head, ())
        if len(value) not in lengths:
            self._lengths[head] = tuple(sorted((*lengths, len(value)), reverse=True))
        for offset in range(_STEP):
            gram = value[offset : offset + _GRAM]
            offsets = self._grams.get(gram, frozenset())
            if offset not in offsets:
                self._grams[gram] = offsets | {offset}

    def _starts(self, text: str) -> list[int]:
        grams = self._grams
        hits = [j for j in range(0, len(text) - _GRAM + 1, _STEP) if text[j : j + _GRAM] in grams]
        if not hits:
            return []
        return sorted({j - o for j in hits for o in grams[text[j : j + _GRAM]] if j >= o})

    def _match(self, text: str, start: int) -> int:
        """The length of the longest value at `start`, 0 if none."""
        for length in self._lengths.get(text[start : start + _MIN_LENGTH], ()):
            if text[start : start + length] in self._values:
                return length
        return 0

    def _absent(self, text: str) -> bool:
        """True when no value can be in `text` (a quick answer while there are few values)."""
        few = self._few
        # map() over a bound method, not a generator expression: this runs on every log line.
        return few is not None and not any(map(text.__contains__, few))

    def search(self, text: str) -> bool:
        if self._absent(text):
            return False
        return any(self._match(text, start) for start in self._starts(text))

    def sub(self, text: str, mask: str) -> str:
        if self._absent(text):
            return text
        parts: list[str] = []
        done = 0
        for start in self._starts(text):
            if start < done:
                continue  # inside a value already masked
            length = self._match(text, start)
            if length:
                parts += (text[done:start], mask)
                done = start + length
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)


_lock = threading.Lock()
_values = _Index()
# The same values as they appear inside JSON text (escaped, with and without ensure_ascii).
_json_values = _Index()


def register(value: str) -> None:
    """Add `value` to the set that is always masked. Short values are ignored (see _MIN_LENGTH).

    O(1) amortised: listing a thousand keys registers a thousand values.
    """
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        _values.add(value)
        for ascii_only in (True, False):
            _json_values.add(json.dumps(value, ensure_ascii=ascii_only)[1:-1])


def hash_email(address: str) -> str:
    """A stable, non-reversible stand-in for an email address."""
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]
    return f"email:{digest}"


def redact(text: str) -> str:
    """Return `text` with registered secrets, bearer tokens and email addresses masked."""
    text = _values.sub(text, "***")
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
    if _json_values.search(document):
        return False
    return "@" not in document and not _may_hold_scheme(document)
