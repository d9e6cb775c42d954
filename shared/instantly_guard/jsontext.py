"""JSON encoders built once, for text encoded on every request.

`json.JSONEncoder.encode` builds a new C encoder object for every call (and tracks every
container to refuse circular ones): for a 2 KB document about a microsecond of a few. The
encoders here are that same C encoder, built once with the same options, so they give the same
text as `JSONEncoder(...).encode`; a circular document raises RecursionError instead of
ValueError.
Where the C accelerator is missing, they are `JSONEncoder.encode` itself.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

Encode = Callable[[Any], str]


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encoder(
    *,
    ensure_ascii: bool,
    sort_keys: bool = False,
    separators: tuple[str, str] = (", ", ": "),
    allow_nan: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> Encode:
    """`JSONEncoder(ensure_ascii=..., sort_keys=..., separators=..., allow_nan=...,
    default=...).encode`, built once (see the module docstring)."""
    plain = json.JSONEncoder(
        ensure_ascii=ensure_ascii,
        sort_keys=sort_keys,
        separators=separators,
        allow_nan=allow_nan,
        default=default,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return plain.encode
    strings = (
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    )
    item_separator, key_separator = separators
    built = make(
        None,  # no container tracking: see the module docstring
        default or _refuse,
        strings,
        None,
        key_separator,
        item_separator,
        sort_keys,
        False,
        allow_nan,
    )

    def encode(document: Any) -> str:
        return "".join(built(document, 0))

    return encode
