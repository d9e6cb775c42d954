"""Decoding Pub/Sub messages from Secret Manager and Cloud Scheduler."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from instantly_guard.rotation.events import (
    PUBSUB_EVENT_TYPE,
    Ignored,
    RotateRequest,
    SweepRequest,
    decode_cloud_event,
    decode_message,
    decode_push,
)

SECRET_ID = "projects/demo-project/secrets/audit-exporter-key"


def secret_manager_message(
    event_type: str = "SECRET_ROTATE",
    secret_id: str | None = SECRET_ID,
    timestamp: str = "2026-03-01T00:00:00.123456789Z",
    message_id: str = "8401133284621441",
) -> dict[str, Any]:
    attributes = {"eventType": event_type, "dataFormat": "JSON", "timestamp": timestamp}
    if secret_id:
        attributes["secretId"] = secret_id
    body = {"name": secret_id, "rotation": {"rotationPeriod": "2592000s"}} if secret_id else {}
    return {
        "attributes": attributes,
        "data": base64.b64encode(json.dumps(body).encode()).decode(),
        "messageId": message_id,
        "publishTime": "2026-03-01T00:00:01.5Z",
    }


def test_secret_rotate_names_the_secret_and_the_event_time() -> None:
    decoded = decode_message(secret_manager_message())
    assert isinstance(decoded, RotateRequest)
    assert decoded.secret == "audit-exporter-key"
    assert decoded.project == "demo-project"
    assert decoded.event_time == datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert decoded.rotation_id.startswith("20260301t000000-")


def test_every_delivery_of_one_event_names_the_same_rotation() -> None:
    first = decode_message(secret_manager_message(message_id="1"))
    second = decode_message(secret_manager_message(message_id="2"))
    later = decode_message(secret_manager_message(timestamp="2026-04-01T00:00:00Z"))
    assert isinstance(first, RotateRequest)
    assert isinstance(second, RotateRequest)
    assert isinstance(later, RotateRequest)
    assert first.rotation_id == second.rotation_id != later.rotation_id


@pytest.mark.parametrize(
    "event_type",
    [
        "SECRET_VERSION_ADD",
        "SECRET_VERSION_ENABLE",
        "SECRET_VERSION_DISABLE",
        "SECRET_VERSION_DESTROY",
        "SECRET_UPDATE",
        "SECRET_CREATE",
        "SECRET_DELETE",
    ],
)
def test_events_our_own_writes_cause_are_ignored(event_type: str) -> None:
    decoded = decode_message(secret_manager_message(event_type))
    assert isinstance(decoded, Ignored)
    assert not decoded.malformed
    assert decoded.event_type == event_type


def test_topic_configured_without_a_secret_is_ignored() -> None:
    decoded = decode_message(secret_manager_message("TOPIC_CONFIGURED", secret_id=None))
    assert isinstance(decoded, Ignored)
    assert not decoded.malformed


def test_sweep_by_attribute_or_by_body() -> None:
    by_attribute = {"attributes": {"instantlyGuard": "sweep"}, "messageId": "7"}
    by_body = {"data": base64.b64encode(b'{"action": "sweep"}').decode(), "messageId": "8"}
    assert decode_message(by_attribute) == SweepRequest(message_id="7")
    assert decode_message(by_body) == SweepRequest(message_id="8")


@pytest.mark.parametrize(
    "message",
    [
        {"attributes": "nope"},
        {"data": "%%% not base64 %%%"},
        {"data": 12},
        {"attributes": {}},
        {"attributes": {"eventType": "SECRET_ROTATE", "secretId": "../../etc/passwd"}},
        {"attributes": {"eventType": "SECRET_ROTATE", "secretId": "projects/p/secrets/s"}},
    ],
    ids=["attributes", "base64", "data-type", "empty", "secret-id", "no-time"],
)
def test_malformed_messages_are_reported_as_such(message: dict[str, Any]) -> None:
    decoded = decode_message(message)
    assert isinstance(decoded, Ignored)
    assert decoded.malformed


def test_cloud_event_envelope() -> None:
    data = {"message": secret_manager_message(), "subscription": "projects/p/subscriptions/s"}
    assert isinstance(decode_cloud_event(PUBSUB_EVENT_TYPE, data), RotateRequest)
    assert isinstance(
        decode_cloud_event(PUBSUB_EVENT_TYPE, json.dumps(data).encode()), RotateRequest
    )
    assert decode_cloud_event("google.cloud.storage.object.v1.finalized", data).malformed  # type: ignore[union-attr]
    assert decode_cloud_event(PUBSUB_EVENT_TYPE, {"nope": 1}).malformed  # type: ignore[union-attr]
    assert decode_cloud_event(PUBSUB_EVENT_TYPE, b"{not json").malformed  # type: ignore[union-attr]


def push(message: dict[str, Any]) -> bytes:
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


def test_a_push_without_data_is_decoded_from_its_attributes() -> None:
    topic_configured = {"attributes": {"eventType": "TOPIC_CONFIGURED"}, "messageId": "5"}
    delivery = decode_push({"Content-Type": "application/json"}, push(topic_configured))
    assert delivery.event_id == "5"
    assert isinstance(delivery.decoded, Ignored)
    assert not delivery.decoded.malformed
    assert delivery.decoded.event_type == "TOPIC_CONFIGURED"

    rotate = secret_manager_message()
    del rotate["data"]
    assert isinstance(decode_push({}, push(rotate)).decoded, RotateRequest)


def test_the_cloud_event_forms_of_a_push_decode_alike() -> None:
    envelope = {"message": secret_manager_message(), "subscription": "projects/p/subscriptions/s"}
    binary = decode_push(
        {"Ce-Specversion": "1.0", "Ce-Type": PUBSUB_EVENT_TYPE, "Ce-Id": "b"},
        json.dumps(envelope).encode(),
    )
    structured = decode_push(
        {"content-type": "application/cloudevents+json; charset=utf-8"},
        json.dumps({"specversion": "1.0", "type": PUBSUB_EVENT_TYPE, "id": "s", "data": envelope}),
    )
    raw = decode_push({}, json.dumps(envelope).encode())
    assert binary.decoded == structured.decoded == raw.decoded
    assert (binary.event_id, structured.event_id) == ("b", "s")


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{not json", b"[]", b'{"message": []}', b'{"specversion": "1.0"}'],
)
def test_what_is_no_message_is_malformed_never_an_exception(body: bytes) -> None:
    decoded = decode_push({"content-type": "application/json"}, body).decoded
    assert isinstance(decoded, Ignored)
    assert decoded.malformed


def test_a_regional_secret_id_names_the_secret_and_its_location() -> None:
    regional = "projects/demo-project/locations/europe-west1/secrets/audit-exporter-key"
    decoded = decode_message(secret_manager_message(secret_id=regional))
    assert isinstance(decoded, RotateRequest)
    assert (decoded.project, decoded.location, decoded.secret) == (
        "demo-project",
        "europe-west1",
        "audit-exporter-key",
    )
    same_name_global = decode_message(secret_manager_message())
    assert isinstance(same_name_global, RotateRequest)
    assert same_name_global.location is None
    assert decoded.rotation_id != same_name_global.rotation_id
