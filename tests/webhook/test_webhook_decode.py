"""A delivery's body is decoded without `json.loads`'s outer layer when it is one object from its
first character to its last: the result, and every error's message, are exactly `json.loads`'s."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from instantly_guard.webhook.payload import PayloadError, _decode

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_OBJECTS = st.dictionaries(st.text(max_size=8), _VALUES, max_size=6)


def _reference(text: str) -> tuple[str, Any]:
    """What `json.loads` alone makes of `text`: ("ok", value) or ("error", the message)."""
    try:
        return "ok", json.loads(text)
    except json.JSONDecodeError as exc:
        return "error", f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        return "error", "number too long"
    except RecursionError:
        return "error", "nested too deeply"


def _ours(text: str) -> tuple[str, Any]:
    try:
        return "ok", _decode(text.encode("utf-8", "surrogatepass"))
    except PayloadError as exc:
        return "error", str(exc).removeprefix("body is not valid JSON: ")


def _same(a: Any, b: Any) -> bool:
    # NaN is not equal to itself: compare the encodings, which keep key order and every value.
    return json.dumps(a) == json.dumps(b)


@settings(max_examples=400, deadline=None)
@given(
    document=_OBJECTS,
    spaced=st.booleans(),
    edit=st.sampled_from(["none", "truncate", "junk", "brace", "space", "comma", "inner"]),
    cut=st.integers(min_value=1, max_value=40),
)
def test_the_direct_path_reads_as_json_loads(
    document: dict[str, Any], spaced: bool, edit: str, cut: int
) -> None:
    text = json.dumps(document, separators=(", ", ": ") if spaced else (",", ":"))
    text = {
        "none": text,
        "truncate": text[: max(1, len(text) - cut)],
        "junk": text + "x}",
        "brace": text + "}",
        "space": text + " ",
        "comma": text[:-1] + ",}",
        "inner": text[:1] + "]" + text[1:],
    }[edit]
    if not text.strip():
        return
    expected, ours = _reference(text), _ours(text)
    assert expected[0] == ours[0], text
    if expected[0] == "ok":
        assert _same(expected[1], ours[1])
    else:
        assert expected[1] == ours[1]


def test_an_object_with_extra_data_after_it_is_refused_as_json_loads_refuses_it() -> None:
    assert _ours('{"a": 1}{"b": 2}') == _reference('{"a": 1}{"b": 2}')
    assert _ours('{"a": 1}{"b": 2}')[0] == "error"


def test_a_deep_object_is_refused_as_too_deep() -> None:
    text = '{"a":' * 100_000 + "1" + "}" * 100_000
    assert _ours(text) == ("error", "nested too deeply")
