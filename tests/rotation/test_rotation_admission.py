"""Forged rotation events (issue 18): what anyone who can publish to the rotation topic can do.

The function is deployed through functions-framework with the local backend against the sandbox;
each test sends what a forger could publish and checks that nothing is minted, nothing is recorded
as the last rotation, the message is acknowledged (never ridden into the dead-letter topic), and
an alert-worthy log says so. Then a genuine event still rotates."""

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

from instantly_guard.rotation.admission import EventPolicy, min_interval
from instantly_guard.rotation.engine import Rotator
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import AnnotationKey
from instantly_guard.rotation.results import Outcome
from instantly_guard.secrets.base import RotationSchedule, SecretMetadata
from instantly_guard.secrets.local import LocalSecretStore

MAIN = Path(__file__).resolve().parents[2] / "functions" / "key_rotation" / "main.py"
PROJECT = "demo-project"
NUMBER = "123456789012"


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def push(
    secret_id: str,
    timestamp: Any,
    *,
    published: datetime | None = None,
    message_id: str = "1",
    data: str | None = None,
) -> dict[str, Any]:
    published = published or datetime.now(UTC)
    message: dict[str, Any] = {
        "attributes": {
            "eventType": "SECRET_ROTATE",
            "secretId": secret_id,
            "dataFormat": "JSON",
            "timestamp": timestamp,
        },
        "messageId": message_id,
        "publishTime": iso(published),
    }
    if data is not None:
        message["data"] = data
    return {"message": message, "subscription": f"projects/{PROJECT}/subscriptions/rotation"}


def ours(secret: str = MANAGED, project: str = PROJECT) -> str:
    return f"projects/{project}/secrets/{secret}"


@pytest.fixture
def deployed(
    world_factory: Callable[..., World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[World, Any]]:
    state = tmp_path / "state"
    world = world_factory("local", inner=LocalSecretStore(state / "secrets"))
    world.declare()
    monkeypatch.setenv("GUARD_BACKEND", "local")
    monkeypatch.setenv("GUARD_STATE_DIR", str(state))
    monkeypatch.setenv("INSTANTLY_API_BASE", world.sandbox.base_url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("ROTATION_PROJECT_NUMBER", NUMBER)
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


def post(client: Any, body: Any) -> int:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return int(client.post("/", data=raw, headers={"Content-Type": "application/json"}).status_code)


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR
        and getattr(r, "fields", {}).get("rotation_event_refused") is True
    ]


def test_an_event_for_another_project_is_refused_with_an_alert(
    deployed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world, client = deployed
    now = datetime.now(UTC)
    assert post(client, push(ours(project="other-project"), iso(now))) == 200
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert AnnotationKey.ROTATION_TIME not in world.annotations()
    assert len(refusals(caplog)) == 1


@pytest.mark.parametrize("project", [PROJECT, NUMBER], ids=["project-id", "project-number"])
def test_our_project_by_id_or_number_rotates(deployed: Any, project: str) -> None:
    world, client = deployed
    now = datetime.now(UTC)
    assert post(client, push(ours(project=project), iso(now))) == 200
    assert world.sandbox.calls["POST /api-keys"] == 1
    assert world.key_works(world.current_key())


@pytest.mark.parametrize(
    "timestamp",
    ["9999-12-31T23:59:59Z", "2000-01-01T00:00:00Z"],
    ids=["far-future", "far-past"],
)
def test_a_timestamp_far_from_now_is_refused_and_never_recorded(
    deployed: Any, caplog: pytest.LogCaptureFixture, timestamp: str
) -> None:
    world, client = deployed
    assert post(client, push(ours(), timestamp)) == 200
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert AnnotationKey.ROTATION_TIME not in world.annotations()
    assert len(refusals(caplog)) == 1

    # A genuine event afterwards is not a silent duplicate: it rotates.
    assert post(client, push(ours(), iso(datetime.now(UTC)), message_id="2")) == 200
    assert world.sandbox.calls["POST /api-keys"] == 1


def test_a_timestamp_far_from_publish_time_is_refused(
    deployed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world, client = deployed
    now = datetime.now(UTC)
    # Within a day of now, but Pub/Sub stamped the message an hour away from it.
    body = push(ours(), iso(now - timedelta(hours=2)), published=now - timedelta(hours=1))
    assert post(client, body) == 200
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert len(refusals(caplog)) == 1


def test_a_burst_of_events_mints_one_key(deployed: Any, caplog: pytest.LogCaptureFixture) -> None:
    world, client = deployed
    start = datetime.now(UTC) - timedelta(seconds=150)
    statuses = [
        post(client, push(ours(), iso(when), published=when, message_id=str(i)))
        for i, when in ((i, start + timedelta(seconds=i)) for i in range(150))
    ]
    assert set(statuses) == {200}
    assert world.sandbox.calls["POST /api-keys"] == 1
    assert len(world.managed_keys()) == 1
    too_soon = [r for r in caplog.records if getattr(r, "fields", {}).get("rotation_too_soon")]
    assert len(too_soon) == 149


def paced(world: World, interval: timedelta) -> Rotator:
    return Rotator(
        world.store,
        world.clients,
        clock=world.clock,
        sleep=lambda _s: None,
        min_interval=interval,
    )


def test_a_rotation_sooner_than_the_interval_is_refused_but_a_person_can_force_it(
    local_world: World,
) -> None:
    world = local_world
    world.declare()
    rotator = paced(world, timedelta(hours=1))
    assert rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED
    first = world.current_key()

    soon = rotator.handle(world.rotate_event())  # one minute later
    assert soon.outcome is Outcome.TOO_SOON
    assert world.current_key() == first

    forced = rotator.rotate(MANAGED, world.manual())  # `instantly-guard rotate`
    assert forced.outcome is Outcome.ROTATED
    assert world.current_key() != first

    world.clock.advance(timedelta(hours=1))
    assert rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED


def test_the_interval_is_half_the_rotation_period_when_the_store_knows_it() -> None:
    monthly = SecretMetadata(
        name="s", rotation=RotationSchedule(period=timedelta(days=30), next_time=None)
    )
    unscheduled = SecretMetadata(name="s")
    assert min_interval(monthly, timedelta(hours=1)) == timedelta(days=15)
    assert min_interval(unscheduled, timedelta(hours=1)) == timedelta(hours=1)


def test_the_local_store_reads_a_rotation_period(tmp_path: Path) -> None:
    store = LocalSecretStore(tmp_path)
    store.create_secret("s", labels={}, annotations={})
    store.set_rotation(
        "s", period=timedelta(days=1), next_time=datetime.now(UTC), topics=("projects/p/topics/t",)
    )
    assert store.get("s").rotation_period == timedelta(days=1)


def test_policy_without_a_project_skips_only_the_project_check() -> None:
    now = datetime.now(UTC)
    policy = EventPolicy()
    request = RotateRequest("s", "anything", now, "1", publish_time=now)
    assert policy.refusal(request, now) is None
    far = RotateRequest("s", "anything", now + timedelta(days=1), "1", publish_time=now)
    assert policy.refusal(far, now) is not None


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ODD_ENVELOPES = {
    "numeric-timestamp": push(ours(), 1764000000),
    "deep-json-in-data": {
        "message": {"attributes": {"eventType": "SECRET_ROTATE"}, "data": b64(nested(100_000))},
    },
    "deep-json-body": nested(100_000).encode(),
    "deep-message": {"message": json.loads(nested(200))},
    "non-ascii-data": {"message": {"data": "é" * 8, "attributes": {}}},
    "non-ascii-cloud-event-data": {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "data_base64": "é" * 8,
    },
    "object-timestamp": push(ours(), {"seconds": 1}),
    "list-secret-id": push(["a"], iso(datetime.now(UTC))),
}


@pytest.mark.parametrize("body", list(ODD_ENVELOPES.values()), ids=list(ODD_ENVELOPES))
def test_an_odd_envelope_is_acknowledged_with_a_warning(
    deployed: Any, caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    world, client = deployed
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert post(client, raw) == 200
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert any(r.levelno == logging.WARNING for r in caplog.records)
