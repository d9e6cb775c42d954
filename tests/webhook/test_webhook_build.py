"""A receiver whose build fails (its configuration or anything else) fails closed (503 with
Retry-After), logs once, and is built again after an interval (instantly_guard.lazy)."""

from __future__ import annotations

import logging
import sys

import pytest
from webhook_support import SECRET, RecordingPublisher, local_env

from instantly_guard.lazy import BUILD_RETRY_SECONDS, BuildFailedError, Lazy
from instantly_guard.webhook import receiver as receiver_module
from instantly_guard.webhook.receiver import build_receiver, wire_receiver
from instantly_guard.webhook.testing import delivery, sample_event


def _build_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR
        and (
            "could not build the receiver" in r.getMessage()
            or "could not be built" in r.getMessage()
        )
    ]


def gcp_env(**extra: str) -> dict[str, str]:
    return {
        "GUARD_BACKEND": "gcp",
        "INSTANTLY_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_PUBSUB_TOPIC": "projects/p/topics/t",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
        **extra,
    }


def test_missing_pubsub_library_answers_503_and_logs_once_through_main(
    make_client, monkeypatch, caplog
):
    # A bundle without google-cloud-pubsub: importing the Pub/Sub backend fails.
    monkeypatch.setitem(sys.modules, "instantly_guard.publish.gcp", None)
    client = make_client(gcp_env())
    caplog.set_level(logging.INFO, logger="instantly_guard")

    statuses = [
        client.post("/", json=sample_event(), headers={"x-webhook-secret": SECRET}).status_code,
        client.post("/", json=sample_event(), headers={"x-webhook-secret": SECRET}).status_code,
        client.get("/").status_code,
    ]

    assert statuses == [503, 503, 503]
    assert client.post("/", json=sample_event()).headers["Retry-After"] == "5"
    assert client.post("/", json=sample_event()).headers["Retry-After"] == "5"
    [error] = _build_errors(caplog)
    assert "module 'instantly_guard.publish.gcp' is missing" in error.getMessage()
    assert SECRET not in caplog.text


def test_unexpected_build_error_is_a_fail_closed_receiver_without_the_secret(
    tmp_path, monkeypatch, caplog
):
    def broken(settings):
        raise RuntimeError(f"boom while wiring {SECRET}")

    monkeypatch.setattr(receiver_module, "make_publisher", broken)
    caplog.set_level(logging.INFO, logger="instantly_guard")

    receiver = build_receiver(local_env(tmp_path))

    assert not receiver.configured
    assert receiver.build_error is not None
    assert SECRET not in receiver.build_error
    statuses = [receiver.handle(delivery(sample_event(), SECRET)).status for _ in range(3)]
    assert statuses == [503, 503, 503]
    [error] = _build_errors(caplog)
    assert "RuntimeError" in error.getMessage()
    assert SECRET not in caplog.text


def test_configuration_error_is_not_a_build_error(tmp_path):
    receiver = build_receiver(local_env(tmp_path, INSTANTLY_WEBHOOK_SECRET=None))

    assert not receiver.configured
    assert receiver.build_error is None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_build_is_retried_at_most_every_interval_then_recovers(
    tmp_path, monkeypatch, caplog
):
    attempts = []
    publisher = RecordingPublisher()

    def flaky(settings):
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("transient failure at cold start")
        return publisher

    monkeypatch.setattr(receiver_module, "make_publisher", flaky)
    caplog.set_level(logging.INFO, logger="instantly_guard")
    clock = _Clock()
    lazy = Lazy(
        lambda: wire_receiver(local_env(tmp_path)), what="webhook receiver", monotonic=clock
    )

    def status() -> int:
        try:
            return lazy.get().handle(delivery(sample_event(step=len(attempts)), SECRET)).status
        except BuildFailedError:
            return 503

    assert [status() for _ in range(5)] == [503] * 5
    assert len(attempts) == 1  # one attempt, not one per request
    clock.now += BUILD_RETRY_SECONDS - 0.1
    assert status() == 503
    assert len(attempts) == 1
    clock.now += 0.2
    assert status() == 503  # second attempt, fails again with the same problem
    assert len(attempts) == 2
    clock.now += BUILD_RETRY_SECONDS
    assert status() == 200  # third attempt succeeds
    assert len(attempts) == 3
    assert len(publisher.messages) == 1
    assert [status() for _ in range(3)] == [200, 200, 200]
    assert len(attempts) == 3  # a working receiver is never rebuilt
    # The persisting problem was logged once, across both failed builds; the recovery once.
    assert len(_build_errors(caplog)) == 1
    assert sum("after an earlier failure" in r.getMessage() for r in caplog.records) == 1


def test_configuration_error_through_main_answers_503_with_retry_after(make_client, tmp_path):
    # Deployed with a log level the settings refuse: a configuration error at cold start.
    # The earlier receiver answered 503 for the instance's whole life, without Retry-After.
    client = make_client(local_env(tmp_path, LOG_LEVEL="LOUD"))

    first = client.post("/", json=sample_event(), headers={"x-webhook-secret": SECRET})

    assert first.status_code == 503
    assert first.json == {"error": "unavailable, retry later"}
    assert int(first.headers["Retry-After"]) == BUILD_RETRY_SECONDS
