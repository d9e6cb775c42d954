"""A message Pub/Sub could never take gets a final 413, not a 503 that Instantly retries forever."""

from __future__ import annotations

import dataclasses
import json

from webhook_support import SECRET, RecordingPublisher, local_env

from instantly_guard.webhook.handler import MAX_MESSAGE_BYTES, message_attributes, message_size
from instantly_guard.webhook.payload import parse_event
from instantly_guard.webhook.receiver import build_receiver
from instantly_guard.webhook.testing import delivery, sample_event


def _receiver(tmp_path, **deps):
    publisher = RecordingPublisher()
    receiver = build_receiver(local_env(tmp_path), publisher=publisher)
    receiver.deps = dataclasses.replace(receiver.deps, **deps)
    return receiver, publisher


def test_body_whose_canonical_json_exceeds_pubsub_limit_gets_413(tmp_path):
    # 2 MiB of DEL characters (a body limit the settings used to allow) re-encode to ~12 MB.
    receiver, publisher = _receiver(tmp_path, max_body_bytes=2 * 1024 * 1024)
    body = json.dumps(sample_event(note="\x7f" * 2_000_000), ensure_ascii=False).encode()
    assert len(body) < 2 * 1024 * 1024
    assert len(parse_event(body).canonical) > MAX_MESSAGE_BYTES

    first = receiver.handle(delivery(body, SECRET))
    again = receiver.handle(delivery(body, SECRET))

    assert (first.status, again.status) == (413, 413)  # refused both times, never "duplicate"
    assert "encoded for publishing" in first.json()["error"]
    assert publisher.calls == 0


def test_message_bound_counts_attributes_too(tmp_path):
    body = json.dumps(sample_event(note="x" * 500)).encode()
    parsed = parse_event(body)
    size = message_size(parsed.canonical, message_attributes(parsed, parsed_now()))
    assert size > len(parsed.canonical)

    at_bound, publisher = _receiver(tmp_path / "a", max_message_bytes=size + 64)
    below, _ = _receiver(tmp_path / "b", max_message_bytes=len(parsed.canonical))

    assert at_bound.handle(delivery(body, SECRET)).status == 200
    assert len(publisher.messages) == 1
    assert below.handle(delivery(body, SECRET)).status == 413


def test_largest_allowed_body_always_fits(tmp_path):
    # The worst case within the settings' cap (1 MiB, re-encoded to ~6 MB) is accepted and published.
    receiver, publisher = _receiver(tmp_path, max_body_bytes=1024 * 1024)
    padding = 1024 * 1024 - len(json.dumps(sample_event(note=""))) - 64
    body = json.dumps(sample_event(note="\x7f" * padding), ensure_ascii=False).encode()
    assert len(body) <= 1024 * 1024

    assert receiver.handle(delivery(body, SECRET)).status == 200
    [(data, attributes)] = publisher.messages
    assert message_size(data, attributes) <= MAX_MESSAGE_BYTES


def parsed_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
