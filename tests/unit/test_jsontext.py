"""`jsontext.encoder` gives exactly `json.JSONEncoder(...).encode`'s text, for any JSON value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instantly_guard.jsontext import encoder

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),  # any code point, lone surrogates included
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(), inner, max_size=5)
    ),
    max_leaves=30,
)

_OPTIONS: list[dict[str, Any]] = [
    {"ensure_ascii": False},
    {"ensure_ascii": True, "sort_keys": True, "separators": (",", ":"), "allow_nan": False},
]


@pytest.mark.parametrize("options", _OPTIONS, ids=["log-line", "canonical"])
@settings(max_examples=300, deadline=None)
@given(value=_VALUES)
def test_the_text_is_the_stdlib_encoders(options: dict[str, Any], value: Any) -> None:
    assert encoder(**options)(value) == json.JSONEncoder(**options).encode(value)


def test_non_finite_numbers_are_refused_when_not_allowed_and_written_when_allowed() -> None:
    strict = encoder(ensure_ascii=True, allow_nan=False)
    for value in (math.nan, math.inf, [1, {"a": -math.inf}]):
        with pytest.raises(ValueError, match="Out of range"):
            strict(value)
    assert encoder(ensure_ascii=False)([math.nan, math.inf]) == "[NaN, Infinity]"


def test_what_json_cannot_encode_goes_to_default_or_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        encoder(ensure_ascii=False)({"a": object()})
    assert encoder(ensure_ascii=False, default=lambda v: "X")({"a": {1, 2}}) == '{"a": "X"}'


def test_a_circular_document_raises_instead_of_looping() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(RecursionError):
        encoder(ensure_ascii=False)(looped)
