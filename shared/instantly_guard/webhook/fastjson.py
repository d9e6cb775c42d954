"""A delivery's document and canonical bytes from orjson, when they are exactly what `json` gives.

`payload.parse_event` decodes every body and encodes it again in canonical form (keys sorted,
compact, ASCII with `\\uXXXX` escapes) to derive the event id; with `json` those two steps were
about half of the receiver's own work per delivery. orjson does both several times faster, but
it is not `json`:

- it reads an integer beyond 64 bits as a float (`json` keeps the integer);
- it writes floats in its own notation (`0.00001` where `json` writes `1e-05`);
- it writes every character from DEL (U+007F) up as it is, where `json` escapes it;
- it refuses what `json` accepts (lone surrogates, NaN, numbers that overflow to infinity, a
  byte-order mark, deeper nesting).

So `decode_canonical` answers only for an object without a single float anywhere in it, escapes what
orjson left unescaped exactly as `json` would, and answers None for anything else: the caller
then takes the `json` path, which gives the same result and the same error message as before.
Either way the bytes, and so every event id, are those `json` gives (a property test holds the
two equal), and the reconciler, which derives ids from Instantly's records with `json`, agrees.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

_SORTED: Final = orjson.OPT_SORT_KEYS
_CONTAINERS: Final = frozenset({dict, list})
# What `json.dumps(ensure_ascii=True)` escapes and orjson does not: DEL and every non-ASCII
# character (only ever inside strings: JSON's structure is ASCII).
_UNESCAPED: Final = re.compile("[\x7f-\U0010ffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as `json` writes it
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _holds_float(document: dict[str, Any]) -> bool:
    """Whether a float is anywhere in `document`. A loop, not recursion: orjson nests up to 1,024
    levels, deeper than Python's recursion limit. The types of each container's values are
    collected at C speed; only containers are walked into."""
    pending: list[Any] = [document]
    while pending:
        values = pending.pop()
        if type(values) is dict:
            values = values.values()
        kinds = set(map(type, values))
        if float in kinds:
            return True
        if dict in kinds or list in kinds:
            pending += (value for value in values if type(value) in _CONTAINERS)
    return False


def decode_canonical(body: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The JSON object in `body` and its canonical bytes, or None when orjson cannot vouch for
    both being what `json.loads` and `payload.canonical_json` give (see the module docstring)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    if _holds_float(document):
        return None
    encoded = orjson.dumps(document, option=_SORTED)
    if not encoded.isascii() or b"\x7f" in encoded:
        encoded = _UNESCAPED.sub(_escape, encoded.decode("utf-8")).encode("ascii")
    return document, encoded
