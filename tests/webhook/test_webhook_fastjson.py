"""orjson decodes a delivery and writes its canonical bytes only where both are exactly what `json`
gives (`webhook.fastjson`): every event id stays the one the reconciler derives with `json`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from instantly_guard.webhook.fastjson import decode_canonical
from instantly_guard.webhook.payload import canonical_json, parse_event
from instantly_guard.webhook.testing import sample_event

# Every code point JSON can carry in a valid document (lone surrogates are for the json path).
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=10)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits, where orjson makes floats
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=14,
)
_OBJECTS = st.dictionaries(_TEXT, _VALUES, max_size=6)


def _json_way(body: bytes) -> tuple[Any, bytes]:
    document = json.loads(body)
    return document, canonical_json(document)


@settings(max_examples=600, deadline=None)
@given(document=_OBJECTS, ascii_only=st.booleans(), spaced=st.booleans())
@example(document={"a": "\x7f"}, ascii_only=False, spaced=False)
@example(document={"a": "\U0001f600 é \uffff \ue000"}, ascii_only=False, spaced=False)
@example(document={"\U0001f600": 1, "\uffff": 2, "a\U00010000": 3}, ascii_only=False, spaced=True)
@example(document={"a": 2**64}, ascii_only=True, spaced=False)
@example(document={"a": [1.5, -2e-7]}, ascii_only=True, spaced=False)
def test_answers_only_what_json_gives(
    document: dict[str, Any], ascii_only: bool, spaced: bool
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    body = json.dumps(document, ensure_ascii=ascii_only, separators=separators).encode()
    fast = decode_canonical(body)
    if fast is not None:
        document, canonical = fast
        assert document == json.loads(body)
        assert json.dumps(document) == json.dumps(json.loads(body))  # key order too
        assert canonical is None or canonical == canonical_json(document)


@pytest.mark.parametrize(
    ("document", "encoded"),
    [
        (sample_event("reply_received"), True),
        (sample_event("email_sent", email_text='a\x00c\n\t"\\ </script>'), True),
        ({**sample_event("email_opened"), "step": 2**63 - 1, "variant": -(2**63)}, True),
        (
            sample_event("lead_interested", lead_email="josé@exämple.com", first_name="Zoë 😀"),
            False,
        ),
        (sample_event("email_sent", email_text="a\x7fb"), False),  # json escapes DEL
    ],
    ids=["plain", "escapes", "64-bit", "non-ascii", "del"],
)
def test_a_delivery_without_floats_takes_the_fast_path(
    document: dict[str, Any], encoded: bool
) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()
    fast = decode_canonical(body)
    assert fast is not None  # a test that can fail: these are what Instantly sends
    assert fast[0] == json.loads(body)
    if encoded:
        assert fast[1] == _json_way(body)[1]
    else:
        assert fast[1] is None  # json writes these bytes


@pytest.mark.parametrize(
    "body",
    [
        b'{"timestamp":"2026-01-01T00:00:00Z","event_type":"x","step":2.0}',  # a float
        b'{"a":18446744073709551616}',  # 2**64: orjson reads a float, json an integer
        b'{"a":"\\ud800"}',  # a lone surrogate
        b'{"a":1e999}',  # infinity
        b'{"a":NaN}',
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b"[1,2]",  # not an object
        b"",
        b"{" * 2000 + b"}" * 2000,
    ],
    ids=["float", "u64+1", "surrogate", "inf", "nan", "bom", "array", "empty", "deep"],
)
def test_anything_else_goes_the_json_way(body: bytes) -> None:
    assert decode_canonical(body) is None


def test_parse_event_ids_are_those_of_json() -> None:
    event = sample_event("reply_received", lead_email="zoë@example.com", step="3")
    body = json.dumps(event, ensure_ascii=False, indent=2).encode()
    parsed = parse_event(body)
    assert parsed.canonical == canonical_json(json.loads(body))
    assert parsed.event.fields["step"] == 3
