"""Deliveries shaped like the real ones (`samples/`, see its README) through the receiver, with
the real sender's headers: each accepted and stored as it came, its fields read by family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from webhook_support import SECRET

from instantly_guard.publish.local import read_outbox
from instantly_guard.webhook.payload import parse_event

SAMPLES = Path(__file__).parent / "samples"
HEADERS = json.loads((SAMPLES / "headers.json").read_text())
EVENTS = sorted(p for p in SAMPLES.glob("*.json") if p.name != "headers.json")


@pytest.mark.parametrize("sample", EVENTS, ids=lambda p: p.stem)
def test_a_real_shaped_delivery_is_accepted_and_stored_as_it_came(client, state_dir, sample):
    body = sample.read_bytes()

    response = client.post("/", data=body, headers={**HEADERS, "x-webhook-secret": SECRET})

    assert response.status_code == 200, response.get_json()
    [stored] = [m.as_json() for m in read_outbox(state_dir)]
    assert stored["data"] == json.loads(body)
    assert stored["attributes"]["event_type"] == sample.stem


def test_the_reply_fields_of_a_lead_event_are_read_as_reply_fields() -> None:
    """`lead_interested` carries the `reply_*` fields of the reply that set the status: they are
    documented fields of the event, not the customer's lead data."""
    event = parse_event((SAMPLES / "lead_interested.json").read_bytes()).event
    assert event.fields["reply_text"] == "Sounds interesting, can we talk on Thursday?"
    assert "reply_text" not in event.extra
    assert event.fields["unibox_url"] is None
    assert event.extra["firstName"] == "Jordan"  # lead variables stay the customer's data
