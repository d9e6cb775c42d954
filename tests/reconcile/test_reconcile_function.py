"""`functions/reconcile/main.py` through functions-framework: the local stack (outbox), and the
deployed shape (GUARD_BACKEND=gcp) with the real Pub/Sub and Cloud Storage clients against the
stand-ins in `tests/standins/`."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.standins.gcs import GcsStandIn
from tests.standins.pubsub import PubSubStandIn

from instantly_guard.audit.checkpoint import Checkpoint
from instantly_guard.webhook.payload import canonical_json, event_id

from .reconcile_support import (
    ReceiverServer,
    add_webhook,
    deliver,
    our_webhook_ids,
    reconcile_env,
)

MAIN = Path(__file__).resolve().parents[2] / "functions" / "reconcile" / "main.py"
SCHEDULER = {
    "X-CloudScheduler-JobName": "instantly-reconcile",
    "X-CloudScheduler-ScheduleTime": "2026-03-04T12:05:00Z",
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def function(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A functions-framework test client for the reconcile function with `env` as environment."""
    import functions_framework

    loaded: list[Any] = []

    def make(env: dict[str, str]) -> Any:
        prefixes = ("RECONCILE_", "GUARD_", "INSTANTLY_", "WEBHOOK_", "PUBSUB_", "STORAGE_")
        for name in [n for n in os.environ if n.startswith(prefixes)]:
            monkeypatch.delenv(name)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = functions_framework.create_app(target="reconcile_webhooks", source=str(MAIN))
        loaded.append(sys.modules["main"])
        return app.test_client()

    yield make
    for module in loaded:
        built = module._service.reset()
        if built is not None:
            built.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


def _outage(sandbox_factory, receiver: ReceiverServer, n: int):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    payloads = deliver(sb, hook, n)
    receiver.start()
    return sb, sorted(event_id(canonical_json(p)) for p in payloads)


def test_local_stack_republishes_into_the_outbox_and_answers_the_report(
    sandbox_factory, receiver: ReceiverServer, function
) -> None:
    sb, expected = _outage(sandbox_factory, receiver, 5)
    client = function(reconcile_env(sb, receiver.state_dir, receiver.url))

    response = client.post("/", headers=SCHEDULER)
    again = client.post("/", headers=SCHEDULER)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["outcome"], body["missing"], body["republished"]) == ("complete", 5, 5)
    assert sorted(body["missing_event_ids"]) == expected
    assert again.get_json()["outcome"] == "duplicate"
    assert sorted(receiver.outbox_ids()) == expected
    assert client.get("/").status_code == 405


def test_missing_configuration_answers_503_naming_every_variable(function) -> None:
    # One build policy for every function (instantly_guard.lazy): a failed build, configuration
    # included, answers 503 with Retry-After and is tried again, never cached for good.
    client = function({"GUARD_BACKEND": "gcp"})

    response = client.post("/", headers=SCHEDULER)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["kind"] == "config"
    message = " ".join(response.get_json()["error"]["problems"])
    for name in (
        "RECONCILE_WEBHOOK_IDS",
        "RECONCILE_CHECKPOINT_BUCKET",
        "WEBHOOK_PUBSUB_TOPIC",
        "RECONCILE_API_KEY_SECRET",
    ):
        assert name in message


def test_a_key_without_the_webhook_events_scope_answers_500(
    sandbox_factory, receiver: ReceiverServer, function
) -> None:
    sb, _ = _outage(sandbox_factory, receiver, 1)
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    env["INSTANTLY_API_KEY"] = sb.add_key("wrong", ["leads:read"]).key
    client = function(env)

    response = client.post("/", headers=SCHEDULER)

    assert response.status_code == 500
    assert response.get_json()["error"]["kind"] == "missing_scope"
    assert "webhook_events:read" in response.get_json()["error"]["message"]


def test_instantly_unavailable_answers_503(sandbox_factory, receiver: ReceiverServer, function):  # type: ignore[no-untyped-def]
    sb, _ = _outage(sandbox_factory, receiver, 1)
    sb.faults.fail_next("GET /webhook-events", times=20, mode="error_503")
    env = reconcile_env(sb, receiver.state_dir, receiver.url)
    client = function(env)

    response = client.post("/", headers=SCHEDULER)

    assert response.status_code == 503
    assert response.get_json()["error"]["kind"] == "unavailable"


@pytest.mark.gcp
def test_deployed_shape_publishes_to_pubsub_and_keeps_a_gcs_checkpoint(
    sandbox_factory, receiver: ReceiverServer, function
) -> None:
    sb, expected = _outage(sandbox_factory, receiver, 4)
    with PubSubStandIn() as pubsub, GcsStandIn() as gcs:
        client = function(
            {
                "GUARD_BACKEND": "gcp",
                "GOOGLE_CLOUD_PROJECT": "demo-project",
                "INSTANTLY_API_BASE": sb.base_url,
                "INSTANTLY_API_KEY": sb.add_key("reconciler", ["webhook_events:read"]).key,
                "RECONCILE_WEBHOOK_URLS": receiver.url,
                "RECONCILE_WEBHOOK_IDS": our_webhook_ids(sb),
                "RECONCILE_CHECKPOINT_BUCKET": "demo-reconcile",
                "WEBHOOK_PUBSUB_TOPIC": "instantly-webhook-events",
                "PUBSUB_EMULATOR_HOST": pubsub.target,
                "STORAGE_EMULATOR_HOST": gcs.url,
            }
        )

        response = client.post("/", headers=SCHEDULER)
        later = client.post(
            "/", headers={**SCHEDULER, "X-CloudScheduler-ScheduleTime": "2026-03-04T12:10:00Z"}
        )

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["republished"] == 4
        assert later.get_json()["republished"] == 0
        messages = pubsub.messages
        assert {m.topic for m in messages} == {
            "projects/demo-project/topics/instantly-webhook-events"
        }
        assert sorted(m.attributes["event_id"] for m in messages) == expected
        assert all(m.attributes["reconciled"] == "true" for m in messages)
        # The data is the receiver's canonical JSON: its SHA-256 is the event id.
        assert all(event_id(m.data) == m.attributes["event_id"] for m in messages)
        assert all(json.loads(m.data)["event_type"] == "reply_received" for m in messages)
        data, _ = gcs.objects["demo-reconcile/instantly-reconcile/checkpoint.json"]
        state = Checkpoint.from_bytes(data)
        assert state.exported_total == 4
        assert {r.key for r in state.runs} >= {"instantly-reconcile@2026-03-04T12:05:00Z"}
