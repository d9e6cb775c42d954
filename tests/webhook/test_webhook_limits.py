"""A message Pub/Sub could never take gets a final 413, not a 503 that Instantly retries forever."""

from __future__ import annotations

import dataclasses
import json

from webhook_support import SECRET, RecordingPublisher, local_env

from instantly_guard.webhook.handler import (
    MAX_MESSAGE_BYTES,
    message_attributes,
    message_size,
    read_body,
)
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


class _CountingStream:
    """A request body that counts the reads made of it and may end early (a client gone)."""

    def __init__(self, data: bytes, *, sent: int | None = None) -> None:
        self._data = data[: len(data) if sent is None else sent]
        self.reads: list[int] = []

    def read(self, size: int = -1, /) -> bytes:
        self.reads.append(size)
        chunk, self._data = self._data[:size], self._data[size:]
        return chunk


def test_a_declared_body_is_read_in_one_call_without_a_read_for_its_end() -> None:
    body = b"x" * 2048
    stream = _CountingStream(body)
    assert read_body(stream, 256 * 1024, declared=len(body)) == body
    assert stream.reads == [2048]


def test_a_body_without_a_length_is_read_to_its_end_and_refused_past_the_limit() -> None:
    stream = _CountingStream(b"y" * 3000)
    assert read_body(stream, 4096) == b"y" * 3000
    assert len(stream.reads) == 2  # the second read found the end
    assert read_body(_CountingStream(b"z" * 5000), 4096) is None


def test_a_body_shorter_than_declared_is_what_arrived_and_is_then_refused(tmp_path) -> None:
    short = read_body(_CountingStream(b'{"event_type":"x"}', sent=5), 1024, declared=18)
    assert short == b'{"eve'
    receiver = build_receiver(local_env(tmp_path), publisher=RecordingPublisher())
    request = dataclasses.replace(delivery(sample_event(), SECRET), body=b'{"eve')
    assert receiver.handle(request).status == 400


def test_long_payload_values_are_formatted_but_never_cached():
    # The attributes' and the log line's per-workspace parts are cached for short values only:
    # a sender of long ones must not make the caches hold them.
    from instantly_guard.webhook import handler, logline
    from instantly_guard.webhook.auth import AuthResult, Verdict

    caches = (handler._cached_payload_attributes, logline._where_part, logline._type_part)
    before = [cache.cache_info().currsize for cache in caches]
    event = {**sample_event(workspace="w" * 5000, campaign_id="c" * 5000), "event_type": "x" * 300}
    parsed = parse_event(json.dumps(event).encode())

    attributes = message_attributes(parsed, parsed_now())
    line = logline.delivery_line(
        "accepted", 1.0, AuthResult(Verdict.ALLOWED, "header"), 10, parsed, {}, "t", 0.0
    )

    assert attributes["workspace"] == "w" * 1024  # Pub/Sub's limit on an attribute value
    assert attributes["event_type"] == "x" * 300
    assert line is not None
    assert json.loads(line)["campaign_id"] == "c" * 5000
    assert [cache.cache_info().currsize for cache in caches] == before
