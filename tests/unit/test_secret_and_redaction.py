import json
import os
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from instantly_guard import redaction
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


def _reference(values: list[str], text: str) -> str:
    """What redaction did before the index: one alternation of every value, longest first."""
    ordered = sorted(set(values), key=len, reverse=True)
    return re.sub("|".join(re.escape(v) for v in ordered), "***", text)


def test_index_masks_exactly_what_one_alternation_of_all_values_would() -> None:
    # Overlapping values, values sharing a head, values inside others and at the very end: a
    # small alphabet makes all of these frequent. Compared on text without "@" or scheme words,
    # so only the registered values rule applies; no other test registers a value made only of
    # these characters.
    rng = random.Random(22)
    alphabet = "abc-_"
    values = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(6, 11))) + "\u00e9z" * (i % 2)
        for i in range(60)
    ]
    for value in values:
        redaction.register(value)
    for _ in range(400):
        text = "".join(rng.choice(alphabet + " \u00e9z") for _ in range(rng.randint(0, 90)))
        assert redact(text) == _reference(values, text), text
        assert json_is_clean(json.dumps({"t": text})) == (_reference(values, text) == text)


_RETAINED_PER_VALUE = """
import sys, tracemalloc
from instantly_guard import redaction
count = int(sys.argv[1])
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for i in range(count):
    redaction.register(f"mem-{i:06d}-ZmFrZS1rZXktZm9yLXRlc3Rz")
print((tracemalloc.get_traced_memory()[0] - before) / count)
"""


def _retained_per_value(count: int) -> float:
    # A fresh interpreter: the process-wide registry of a test run holds thousands of values
    # already, and a table resize landing in one measurement only would read as growth.
    shared = str(Path(redaction.__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _RETAINED_PER_VALUE, str(count)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": shared},
    )
    return float(out.stdout)


def test_registering_many_values_keeps_memory_per_value_flat() -> None:
    # One pattern of all values, recompiled on every registration, left re's cache holding
    # hundreds of ever larger patterns: memory grew with the square of the keys listed (ten
    # times the values, about ten times the memory per value). Linear stays within a table
    # resize's slack.
    small = _retained_per_value(200)
    large = _retained_per_value(2000)
    assert large < 3 * small, (small, large)


def test_a_value_registered_after_many_others_is_still_masked_in_json() -> None:
    for i in range(300):
        redaction.register(f"many-{i:05d}-c2VjcmV0LWtleS12YWx1ZQ")
    Secret("last-one-c2VjcmV0\u00fc")
    assert redact("a many-00299-c2VjcmV0LWtleS12YWx1ZQ b") == "a *** b"
    assert not json_is_clean(json.dumps({"k": "x last-one-c2VjcmV0\u00fc"}))
    assert not json_is_clean(json.dumps({"k": "last-one-c2VjcmV0\u00fc"}, ensure_ascii=False))
    assert json_is_clean(json.dumps({"k": "many-00299-c2VjcmV0"}))


def test_few_values_and_many_values_mask_alike() -> None:
    # A process holding few values answers by substring tests, then by the grams: the same text
    # is masked the same way on both sides of the switch.
    index = redaction._Index()
    values = ["abc-abc-1", "abc-abc-12345", "zz-top-secret"]
    text = "x abc-abc-12345 abc-abc-1 zz-top-secret abc-abc- end"
    for value in values:
        index.add(value)
    few = index.sub(text, "***")
    assert few == _reference(values, text) == "x *** *** *** abc-abc- end"
    assert index.search(text)
    assert not index.search("abc-abc- zz-top")
    for i in range(30):
        index.add(f"other-value-{i:03d}")
    assert index.sub(text, "***") == few
    assert index.search(text)
    assert not index.search("abc-abc- zz-top")
