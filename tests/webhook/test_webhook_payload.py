"""Payload parsing, validation messages and the deterministic event id."""

from __future__ import annotations

import json

import pytest

from instantly_guard.webhook.payload import KNOWN_EVENT_TYPES, PayloadError, parse_event
from instantly_guard.webhook.testing import sample_event


def test_known_event_uses_its_model_and_keeps_extra_fields():
    parsed = parse_event(json.dumps(sample_event("reply_received", firstName="Jo")).encode())

    assert parsed.event.family == "reply"
    assert not parsed.custom
    assert parsed.event.extra == {"firstName": "Jo"}


def test_every_documented_delivery_name_is_known():
    assert {
        "link_clicked",
        "auto_reply_received",
        "email_sent",
        "lead_interested",
        "account_error",
    } <= KNOWN_EVENT_TYPES
    assert "email_link_clicked" not in KNOWN_EVENT_TYPES  # the subscription name, not delivered


def test_unknown_type_is_custom():
    parsed = parse_event(json.dumps(sample_event("VIP follow-up")).encode())

    assert parsed.event.family == "custom"
    assert parsed.custom


def test_documented_fields_may_be_absent_or_null():
    minimal = {
        "event_type": "campaign_completed",
        "timestamp": "2025-01-15T10:30:00Z",
        "campaign_id": None,
    }

    assert parse_event(json.dumps(minimal).encode()).event_type == "campaign_completed"


def test_id_is_independent_of_spacing_and_key_order():
    payload = sample_event(nested={"b": 1, "a": [1, 2, {"y": "é", "x": None}]})
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    shuffled = json.dumps(dict(reversed(list(payload.items()))), indent=4).encode()

    assert parse_event(compact).event_id == parse_event(shuffled).event_id
    assert (
        parse_event(compact).event_id
        != parse_event(json.dumps(sample_event(step=2)).encode()).event_id
    )


def test_canonical_bytes_hash_to_the_id():
    import hashlib

    parsed = parse_event(json.dumps(sample_event()).encode())

    assert hashlib.sha256(parsed.canonical).hexdigest() == parsed.event_id
    assert json.loads(parsed.canonical) == sample_event()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "n": NaN}',
            "NaN and infinite numbers are not allowed",
        ),
        (
            b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "n": 1e999}',
            "NaN and infinite numbers are not allowed",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "n": ' + b"9" * 5000 + b"}",
            "number too long",
        ),
        (b'{"event_type": "  ", "timestamp": "2025-01-01T00:00:00Z"}', "non-empty string"),
        (
            b'{"event_type": "email_sent", "timestamp": "2025-01-01T00:00:00Z", "is_first": "maybe"}',
            "is_first",
        ),
        (
            b'{"event_type": "email_sent", "timestamp": "2025-01-01T00:00:00Z", "lead_email": 5}',
            "lead_email",
        ),
    ],
)
def test_rejections(body, message):
    with pytest.raises(PayloadError, match=message):
        parse_event(body)


def test_validation_message_does_not_echo_the_value():
    body = json.dumps(sample_event("email_sent", lead_email=["secret.person@example.com"])).encode()

    with pytest.raises(PayloadError) as caught:
        parse_event(body)

    assert "secret.person" not in str(caught.value)
    assert "lead_email" in str(caught.value)


@pytest.mark.parametrize("event_type", ["email_sent", "VIP follow-up <script>alert(1)</script>"])
def test_validation_message_does_not_echo_the_event_type(event_type):
    body = json.dumps(sample_event(event_type, step="two")).encode()

    with pytest.raises(PayloadError) as caught:
        parse_event(body)

    message = str(caught.value)
    assert event_type not in message
    assert "<script>" not in message
    assert message.startswith("invalid event fields: step: ")


def test_canonical_json_grows_a_body_at_most_six_times():
    # The arithmetic behind settings.MAX_BODY_LIMIT: the worst cases of re-encoding.
    for text in ["\x7f", "é", "中", "\U0001f600", '"', "\\", "a"]:
        body = json.dumps(sample_event(note=text * 1000), ensure_ascii=False).encode()
        assert len(parse_event(body).canonical) <= 6 * len(body)
    worst = b'{"event_type":"x","timestamp":"2025-01-01T00:00:00Z","d":"' + b"\x7f" * 10_000 + b'"}'
    assert 5.9 * len(worst) < len(parse_event(worst).canonical) <= 6 * len(worst)
    numbers = (
        b'{"event_type":"x","timestamp":"2025-01-01T00:00:00Z","n":['
        + b",".join([b"1e15"] * 1000)
        + b"]}"
    )
    assert len(parse_event(numbers).canonical) <= 6 * len(numbers)


@pytest.mark.parametrize(
    ("field", "sent", "read"),
    [
        ("step", "2", 2),
        ("step", 2.0, 2),
        ("step", " 3 ", 3),
        ("variant", True, 1),
        ("is_first", 1, True),
        ("is_first", "false", False),
        ("is_first", "Yes", True),
        ("lead_email", None, None),
    ],
)
def test_documented_fields_are_read_leniently(field, sent, read):
    parsed = parse_event(json.dumps(sample_event("email_sent", **{field: sent})).encode())

    assert parsed.event.fields[field] == read
    # The id and the published bytes are those of the payload as sent, never of our reading.
    assert json.loads(parsed.canonical)[field] == sent


@pytest.mark.parametrize(
    ("field", "sent"),
    [("step", 2.5), ("step", "2.5"), ("step", [2]), ("is_first", 2), ("workspace", 7)],
)
def test_a_documented_field_of_the_wrong_type_is_refused_by_name(field, sent):
    with pytest.raises(PayloadError, match=f"^invalid event fields: {field}: must be "):
        parse_event(json.dumps(sample_event("email_sent", **{field: sent})).encode())


def test_every_wrong_field_is_named_at_once():
    body = json.dumps(sample_event("reply_received", step="two", reply_text=3)).encode()

    with pytest.raises(PayloadError) as caught:
        parse_event(body)

    assert "step: must be an integer" in str(caught.value)
    assert "reply_text: must be a string" in str(caught.value)


def test_fields_of_another_family_are_extra_data():
    # A reply field on a campaign event is not documented there: kept as data, never refused.
    parsed = parse_event(json.dumps(sample_event("campaign_completed", reply_text=3)).encode())

    assert parsed.event.extra["reply_text"] == 3
