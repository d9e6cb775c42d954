"""`rotate_api_key` through functions-framework, with the raw push envelopes Pub/Sub sends and
the CloudEvent forms of the same messages.

Status 200 acknowledges the message; 500 makes Pub/Sub redeliver it (the push subscription has a
retry policy and a dead-letter topic)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from rotation_helpers import MANAGED, World

from instantly_guard.rotation.events import PUBSUB_EVENT_TYPE
from instantly_guard.rotation.model import AnnotationKey
from instantly_guard.secrets.local import LocalSecretStore

MAIN = Path(__file__).resolve().parents[2] / "functions" / "key_rotation" / "main.py"
PROJECT = "demo-project"


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# Events are dated near now: the function refuses a timestamp far from now or from publishTime.
T0 = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
STAMP = iso(T0)
STAMP_HALF = iso(T0 + timedelta(milliseconds=500))
PUBLISHED = iso(T0 + timedelta(seconds=1))
LATER = iso(T0 + timedelta(days=2))


def envelope(
    attributes: dict[str, str],
    data: bytes | str = b"",
    message_id: str = "1",
    publish_time: str = PUBLISHED,
) -> dict[str, Any]:
    raw = data.encode() if isinstance(data, str) else data
    return {
        "message": {
            "attributes": attributes,
            "data": base64.b64encode(raw).decode(),
            "messageId": message_id,
            "publishTime": publish_time,
        },
        "subscription": f"projects/{PROJECT}/subscriptions/eventarc-rotation",
    }


def rotate_message(secret: str, timestamp: str, message_id: str = "1") -> dict[str, Any]:
    return envelope(
        {
            "eventType": "SECRET_ROTATE",
            "secretId": f"projects/{PROJECT}/secrets/{secret}",
            "dataFormat": "JSON",
            "timestamp": timestamp,
        },
        json.dumps({"name": f"projects/{PROJECT}/secrets/{secret}"}),
        message_id,
        publish_time=timestamp,
    )


@pytest.fixture
def deployed(
    world_factory: Callable[..., World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[World, Any]]:
    """The function deployed with the local backend against the sandbox; a world sharing its
    secret store to arrange and observe."""
    state = tmp_path / "state"
    world = world_factory("local", inner=LocalSecretStore(state / "secrets"))
    world.declare()
    monkeypatch.setenv("GUARD_BACKEND", "local")
    monkeypatch.setenv("GUARD_STATE_DIR", str(state))
    monkeypatch.setenv("INSTANTLY_API_BASE", world.sandbox.base_url)
    monkeypatch.setenv("ROTATION_TEST_ATTEMPTS", "1")
    app = functions_framework.create_app(
        target="rotate_api_key", source=str(MAIN), signature_type="http"
    )
    yield world, app.test_client()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_instantly_guard", False):
            root.removeHandler(handler)
    root.setLevel(logging.DEBUG)


def post_structured(client: Any, data: dict[str, Any], event_id: str = "e-1") -> int:
    event = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/secret-rotation",
        "id": event_id,
        "time": PUBLISHED,
        "datacontenttype": "application/json",
        "data": data,
    }
    response = client.post(
        "/", data=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
    )
    return int(response.status_code)


def post_binary(client: Any, data: dict[str, Any], event_id: str = "e-2") -> int:
    response = client.post(
        "/",
        data=json.dumps(data),
        headers={
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/secret-rotation",
            "ce-id": event_id,
        },
    )
    return int(response.status_code)


def test_secret_rotate_provisions_then_a_redelivery_is_acknowledged(deployed: Any) -> None:
    world, client = deployed
    message = rotate_message(MANAGED, STAMP_HALF)

    assert post_structured(client, message) == 200
    key = world.current_key()
    assert world.key_works(key)

    assert post_binary(client, message) == 200  # the same event, redelivered
    assert world.current_key() == key
    assert len(world.store.inner.list_versions(MANAGED)) == 1


def test_a_later_secret_rotate_rotates_again(deployed: Any) -> None:
    world, client = deployed
    assert post_binary(client, rotate_message(MANAGED, STAMP)) == 200
    old = world.current_key()
    assert post_binary(client, rotate_message(MANAGED, LATER, "2")) == 200
    assert world.current_key() != old
    assert world.aliases()["previous"] == "1"
    assert world.key_works(old)  # in its grace


@pytest.mark.parametrize(
    "data",
    [
        envelope(
            {
                "eventType": "SECRET_VERSION_ADD",
                "secretId": f"projects/{PROJECT}/secrets/{MANAGED}",
                "versionId": f"projects/{PROJECT}/secrets/{MANAGED}/versions/1",
                "dataFormat": "JSON",
                "timestamp": STAMP,
            },
            "{}",
        ),
        envelope({"eventType": "TOPIC_CONFIGURED", "dataFormat": "JSON"}, "{}"),
        {"message": {"data": "!!! not base64 !!!"}},
        {"message": {"attributes": {"eventType": "SECRET_ROTATE"}}},
        {"unexpected": True},
    ],
    ids=["version-add", "topic-configured", "bad-base64", "no-secret-id", "no-message"],
)
def test_ignored_and_malformed_messages_are_acknowledged(deployed: Any, data: Any) -> None:
    world, client = deployed
    assert post_structured(client, data) == 200
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert "current" not in world.aliases()


def test_a_retryable_failure_makes_pubsub_redeliver(deployed: Any) -> None:
    world, client = deployed
    message = rotate_message(MANAGED, STAMP)
    world.sandbox.faults.fail_next("POST /api-keys", mode="error_503")

    assert post_structured(client, message) == 500
    assert "current" not in world.aliases()

    assert post_structured(client, message) == 200
    assert world.key_works(world.current_key())
    world.assert_consistent()


def test_a_permanent_failure_is_logged_and_acknowledged(
    deployed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world, client = deployed
    world.declare("misdeclared", admin="missing-admin-secret")
    with caplog.at_level(logging.ERROR, logger="instantly_guard"):
        assert post_structured(client, rotate_message("misdeclared", STAMP)) == 200
    assert any(getattr(r, "fields", {}).get("rotation_failed") for r in caplog.records)
    assert "missing-admin-secret" in world.annotations("misdeclared")[AnnotationKey.LAST_ERROR]


def test_a_secret_that_does_not_exist_is_acknowledged(deployed: Any) -> None:
    _, client = deployed
    assert post_structured(client, rotate_message("deleted-meanwhile", STAMP)) == 200


def test_the_sweep_message_revokes_what_is_due(deployed: Any) -> None:
    world, client = deployed
    world.rotator.handle(world.rotate_event())
    old = world.current_key()
    world.rotator.rotate(MANAGED, world.manual(revoke_now=False))
    # Make the revocation due now, as if the grace had passed.
    meta = world.store.inner.get(MANAGED)
    notes = dict(meta.annotations)
    notes[AnnotationKey.REVOCATIONS] = notes[AnnotationKey.REVOCATIONS].replace(
        json.loads(notes[AnnotationKey.REVOCATIONS])[0]["after"], "2000-01-01T00:00:00+00:00"
    )
    world.store.inner.update(MANAGED, aliases=meta.aliases, annotations=notes, etag=meta.etag)

    sweep = envelope({"instantlyGuard": "sweep"}, json.dumps({"action": "sweep"}))
    assert post_binary(client, sweep) == 200
    assert not world.key_works(old)
    world.assert_consistent()


def test_a_configuration_error_at_cold_start_is_retried(
    deployed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = deployed
    monkeypatch.setenv("GUARD_BACKEND", "carrier-pigeon")
    assert post_structured(client, rotate_message(MANAGED, STAMP)) == 500


def post_push(client: Any, data: dict[str, Any]) -> int:
    """A Pub/Sub push request as terraform/pubsub.tf's subscription sends it: the bare push
    envelope, no CloudEvent headers."""
    response = client.post("/", data=json.dumps(data), headers={"Content-Type": "application/json"})
    return int(response.status_code)


def test_the_push_subscription_envelope_is_converted_and_handled(deployed: Any) -> None:
    world, client = deployed
    message = rotate_message(MANAGED, STAMP)

    assert post_push(client, message) == 200
    key = world.current_key()
    assert world.key_works(key)
    assert post_push(client, message) == 200  # redelivered: acknowledged, nothing rotated
    assert world.current_key() == key

    sweep = envelope({"instantlyGuard": "sweep"}, json.dumps({"action": "sweep"}), "9")
    assert post_push(client, sweep) == 200
    assert world.sandbox.calls["POST /api-keys"] == 1


def push_envelope(**message: Any) -> dict[str, Any]:
    """A push body exactly as Pub/Sub sends it: fields that are empty are absent (proto3 JSON)."""
    return {
        "message": {"messageId": "77", "publishTime": PUBLISHED, **message},
        "subscription": f"projects/{PROJECT}/subscriptions/rotation-push",
    }


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


PUSH_SHAPES = {
    # Secret Manager, when a topic is set on a secret: attributes only, no data at all.
    "topic-configured-no-data": push_envelope(
        attributes={"eventType": "TOPIC_CONFIGURED", "dataFormat": "JSON"}
    ),
    "version-add-no-data": push_envelope(
        attributes={
            "eventType": "SECRET_VERSION_ADD",
            "secretId": f"projects/{PROJECT}/secrets/{MANAGED}",
            "versionId": f"projects/{PROJECT}/secrets/{MANAGED}/versions/3",
        }
    ),
    "unknown-event-type": push_envelope(
        attributes={
            "eventType": "SECRET_SOMETHING_NEW",
            "secretId": f"projects/{PROJECT}/secrets/s",
        },
        data=b64("{}"),
    ),
    "no-attributes": push_envelope(data=b64('{"hello": "world"}')),
    "empty-attributes": push_envelope(attributes={}, data=b64("{}")),
    "empty-attributes-no-data": push_envelope(attributes={}),
    "no-message-id": {"message": {"attributes": {"eventType": "TOPIC_CONFIGURED"}}},
    "data-not-json": push_envelope(data=b64("plain text")),
    "message-not-object": {"message": "hello", "subscription": "s"},
}


@pytest.mark.parametrize("body", list(PUSH_SHAPES.values()), ids=list(PUSH_SHAPES))
def test_every_push_shape_is_acknowledged_without_action(deployed: Any, body: Any) -> None:
    world, client = deployed
    assert post_push(client, body) == 200
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert "current" not in world.aliases()


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'"a string"'],
    ids=["empty", "not-json", "array", "string"],
)
def test_a_body_that_is_no_message_at_all_is_acknowledged(deployed: Any, raw: bytes) -> None:
    world, client = deployed
    response = client.post("/", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert world.sandbox.calls["POST /api-keys"] == 0


def test_a_sweep_by_attribute_alone_runs_without_data(deployed: Any) -> None:
    world, client = deployed
    world.rotator.handle(world.rotate_event())
    assert post_push(client, push_envelope(attributes={"instantlyGuard": "sweep"})) == 200
    world.assert_consistent()


def test_secret_rotate_in_a_raw_push_without_data_rotates(deployed: Any) -> None:
    world, client = deployed
    body = push_envelope(
        attributes={
            "eventType": "SECRET_ROTATE",
            "secretId": f"projects/{PROJECT}/secrets/{MANAGED}",
            "timestamp": STAMP,
        }
    )
    assert post_push(client, body) == 200
    assert world.key_works(world.current_key())


def test_a_structured_cloud_event_with_base64_data_is_handled(deployed: Any) -> None:
    world, client = deployed
    event = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/secret-rotation",
        "id": "e-64",
        "data_base64": b64(json.dumps(rotate_message(MANAGED, STAMP))),
    }
    response = client.post(
        "/", data=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
    )
    assert response.status_code == 200
    assert world.key_works(world.current_key())


@pytest.mark.parametrize("shape", ["binary", "structured"])
def test_cloud_events_of_other_types_or_without_data_are_acknowledged(
    deployed: Any, shape: str
) -> None:
    world, client = deployed
    if shape == "binary":
        headers = {
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.storage.object.v1.finalized",
            "ce-source": "//storage.googleapis.com/projects/_/buckets/b",
            "ce-id": "x",
        }
        assert client.post("/", data=b"", headers=headers).status_code == 200
    else:
        event = {"specversion": "1.0", "type": PUBSUB_TYPE, "source": "//x", "id": "y"}
        response = client.post(
            "/", data=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
        )
        assert response.status_code == 200
    assert world.sandbox.calls["POST /api-keys"] == 0


PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


def test_a_rotation_state_that_would_overflow_is_an_acknowledged_alert_not_a_retry(
    deployed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Secret Manager refuses annotations of 16 KiB or more: a rotation that could not record
    itself used to fail with a ValueError, retried into the dead-letter topic (and mint a key
    each attempt). Now it is refused before minting, acknowledged, and logged as the alert."""
    world, client = deployed
    assert post_push(client, rotate_message(MANAGED, STAMP)) == 200
    key = world.current_key()
    world.fill_state(room_left=100)
    created = world.sandbox.calls["POST /api-keys"]

    with caplog.at_level(logging.ERROR, logger="instantly_guard"):
        assert post_push(client, rotate_message(MANAGED, LATER, "2")) == 200

    assert world.sandbox.calls["POST /api-keys"] == created
    assert world.current_key() == key
    [alert] = [r for r in caplog.records if getattr(r, "fields", {}).get("rotation_backlog")]
    assert alert.levelno == logging.ERROR
    assert alert.fields["rotation_failed"] is True
    assert alert.fields["state_limit"] == 16 * 1024


def _regional_message(secret: str, location: str) -> dict[str, Any]:
    message = rotate_message(secret, STAMP)
    regional = f"projects/{PROJECT}/locations/{location}/secrets/{secret}"
    message["message"]["attributes"]["secretId"] = regional
    return message


def test_a_regional_secret_is_rotated_by_a_store_in_its_location(
    world_factory: Callable[..., World], sm_standin: Any
) -> None:
    from instantly_guard.rotation.function import RotationFunction
    from instantly_guard.secrets.gcp import GcpSecretStore

    store = GcpSecretStore(PROJECT, location="europe-west1", client=sm_standin.client())
    world = world_factory(inner=store)
    world.declare()
    function = RotationFunction(world.rotator)

    handled = function.handle(PUBSUB_EVENT_TYPE, _regional_message(MANAGED, "europe-west1"))

    assert handled.outcome == "rotated", handled
    assert world.key_works(world.current_key())
    names = set(sm_standin._secrets)
    assert f"projects/{PROJECT}/locations/europe-west1/secrets/{MANAGED}" in names


def test_a_secret_of_another_location_is_not_rotated_by_a_global_store(
    world_factory: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    from instantly_guard.rotation.function import RotationFunction

    world = world_factory("local")
    world.declare()
    function = RotationFunction(world.rotator)

    handled = function.handle(PUBSUB_EVENT_TYPE, _regional_message(MANAGED, "us-east1"))

    assert handled.outcome == "wrong-location"
    assert handled.status == 200  # a redelivery cannot help: acknowledged, logged as an error
    assert "GUARD_SECRET_LOCATION" in caplog.text
    assert "current" not in world.store.inner.get(MANAGED).aliases
