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

So `decode_canonical` answers only for an object without a single float anywhere in it, and
gives its canonical bytes only when they are pure ASCII without DEL (what nearly every delivery
is); otherwise the caller encodes the document with `json`, and for anything else it answers
None and the caller takes the `json` path, with the same result and the same error message as
before. Either way the bytes, and so every event id, are those `json` gives (a property test
holds the two equal), and the reconciler, which derives ids from Instantly's records with
`json`, agrees.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

_SORTED: Final = orjson.OPT_SORT_KEYS
_CONTAINERS: Final = frozenset({dict, list})


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


def decode_canonical(body: bytes) -> tuple[dict[str, Any], bytes | None] | None:
    """The JSON object in `body` and its canonical bytes (None when `json` must write them: text
    with DEL or a non-ASCII character, which `json` escapes), or None when orjson cannot vouch
    for the document being what `json.loads` gives (see the module docstring)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or _holds_float(document):
        return None
    encoded = orjson.dumps(document, option=_SORTED)
    if not encoded.isascii() or b"\x7f" in encoded:
        return document, None
    return document, encoded
