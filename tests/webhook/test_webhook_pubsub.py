"""The Pub/Sub path through the real google-cloud-pubsub client against an in-process stand-in."""

from __future__ import annotations

import json

import grpc
import pytest
from webhook_support import SECRET, json_headers

from instantly_guard.publish.base import PublishError
from instantly_guard.publish.gcp import PubSubPublisher
from instantly_guard.webhook.receiver import build_receiver
from instantly_guard.webhook.testing import delivery, sample_event
from standins.pubsub import PubSubStandIn

pytestmark = pytest.mark.gcp
TOPIC = "projects/guard-test/topics/instantly-events"


@pytest.fixture
def standin():
    with PubSubStandIn() as server:
        yield server


def gcp_env(standin: PubSubStandIn, **extra: str) -> dict[str, str]:
    return {
        "GUARD_BACKEND": "gcp",
        "INSTANTLY_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_PUBSUB_TOPIC": TOPIC,
        "PUBSUB_EMULATOR_HOST": standin.target,
        "WEBHOOK_PUBLISH_TIMEOUT": "2s",
        **extra,
    }


@pytest.fixture
def receiver_for(standin):
    built = []

    def make(**extra: str):
        receiver = build_receiver(gcp_env(standin, **extra))
        built.append(receiver)
        return receiver

    yield make
    for receiver in built:
        receiver.close()


def test_accepted_event_is_published_with_attributes(standin, receiver_for):
    receiver = receiver_for()
    payload = sample_event("email_opened")

    response = receiver.handle(delivery(payload, SECRET))

    assert response.status == 200
    [message] = standin.messages
    assert message.topic == TOPIC
    assert json.loads(message.data) == payload
    assert message.attributes["event_id"] == response.json()["id"]
    assert message.attributes["event_type"] == "email_opened"
    assert message.attributes["workspace"] == payload["workspace"]
    assert message.attributes["campaign_id"] == payload["campaign_id"]
    assert "received_at" in message.attributes


def test_permanent_publish_error_answers_503_and_the_retry_is_accepted_once(standin, receiver_for):
    receiver = receiver_for()
    payload = sample_event()
    standin.fail_next(grpc.StatusCode.NOT_FOUND)

    failed = receiver.handle(delivery(payload, SECRET))
    retried = receiver.handle(delivery(payload, SECRET))
    duplicate = receiver.handle(delivery(payload, SECRET))

    assert failed.status == 503
    assert retried.status == 200
    assert duplicate.json()["duplicate"] is True
    assert [m.attributes["event_id"] for m in standin.messages] == [retried.json()["id"]]


def test_transient_errors_are_retried_within_the_bound(standin, receiver_for):
    receiver = receiver_for()
    standin.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)

    response = receiver.handle(delivery(sample_event(), SECRET))

    assert response.status == 200
    assert standin.calls == 3
    assert len(standin.messages) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
def test_publish_that_keeps_failing_answers_503_within_the_timeout(standin, receiver_for, code):
    import time

    receiver = receiver_for(WEBHOOK_PUBLISH_TIMEOUT="500ms")
    standin.fail_always(code)

    started = time.monotonic()
    response = receiver.handle(delivery(sample_event(), SECRET))

    assert response.status == 503
    assert time.monotonic() - started < 3
    assert standin.messages == []


def test_slow_pubsub_times_out_as_503(standin, receiver_for):
    receiver = receiver_for(WEBHOOK_PUBLISH_TIMEOUT="300ms")
    standin.delay(2)

    response = receiver.handle(delivery(sample_event(), SECRET))

    assert response.status == 503
    standin.delay(0)


def test_publisher_is_created_once_and_lazily(standin):
    created = []

    def factory():
        from google.cloud.pubsub_v1 import PublisherClient
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        created.append(1)
        return PublisherClient(
            transport=PublisherGrpcTransport(channel=grpc.insecure_channel(standin.target))
        )

    publisher = PubSubPublisher(TOPIC, client_factory=factory)
    assert created == []
    publisher.publish(b"{}", {"event_id": "a"}, 2)
    publisher.publish(b"{}", {"event_id": "b"}, 2)
    publisher.close()

    assert created == [1]
    with pytest.raises(PublishError, match="closed"):
        publisher.publish(b"{}", {}, 1)


def test_through_functions_framework(make_client, standin):
    client = make_client(env=gcp_env(standin))

    response = client.post("/", data=json.dumps(sample_event()), headers=json_headers())

    assert response.status_code == 200
    assert len(standin.messages) == 1
    standin.fail_always(grpc.StatusCode.PERMISSION_DENIED)
    failed = client.post("/", data=json.dumps(sample_event(step=5)), headers=json_headers())
    assert failed.status_code == 503
    assert len(standin.messages) == 1
