import json
import pickle

import pytest

from instantly_guard.redaction import hash_email, json_is_clean, redact
from instantly_guard.secret import Secret


def test_secret_never_shows_its_value() -> None:
    secret = Secret("key_live_abcdefghijklmnop")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{[secret]}"):
        assert "abcdefghijklmnop" not in text
        assert "***" in text
    assert secret.reveal() == "key_live_abcdefghijklmnop"


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("key_live_pickle_me_not"))


def test_secret_equality_is_by_value() -> None:
    assert Secret("same-value-123") == Secret("same-value-123")
    assert Secret("same-value-123") != Secret("other-value-123")
    assert len({Secret("same-value-123"), Secret("same-value-123")}) == 1


def test_registered_values_are_masked_anywhere_in_text() -> None:
    Secret("ZmFrZS1rZXktZm9yLXRlc3Rz")
    assert redact("got key=ZmFrZS1rZXktZm9yLXRlc3Rz!") == "got key=***!"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    Secret("inner-secret")
    Secret("outer-inner-secret-tail")
    assert redact("x outer-inner-secret-tail y") == "x *** y"


def test_bearer_tokens_are_masked_even_unregistered() -> None:
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer ***"
    assert redact("authorization: basic dXNlcjpwYXNz") == "authorization: basic ***"


def test_emails_are_hashed_stably() -> None:
    text = redact("lead Jane.Doe@Example.com replied")
    assert "Jane.Doe" not in text
    assert hash_email("jane.doe@example.com") in text
    assert hash_email("JANE.DOE@example.com ") == hash_email("jane.doe@example.com")


def test_scheme_words_with_non_ascii_case_folds_are_masked() -> None:
    # The regex is case-insensitive, so it folds long s (U+017F) into "s": the pre-check must not
    # skip it.
    scheme = "Ba\u017fic"
    assert redact(f"{scheme} dXNlcjpwYXNz") == f"{scheme} ***"


def test_json_is_clean_finds_registered_values_in_their_escaped_form() -> None:
    value = 'quote"and\\slash-0123456789'
    Secret(value)
    line = json.dumps({"field": f"x {value} y"}, ensure_ascii=False)
    assert value not in line  # JSON escaped it
    assert not json_is_clean(line)
    assert not json_is_clean(json.dumps({"to": "a@b.io"}))
    assert not json_is_clean(json.dumps({"h": "Bearer abc"}))
    assert json_is_clean(json.dumps({"outcome": "accepted", "status": 200}))
