"""Observability: one structured line per request; never a secret; lead emails only hashed."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from webhook_support import SECRET, WRONG_SAME_LENGTH, RecordingPublisher, local_env

from instantly_guard.logs import JsonFormatter
from instantly_guard.redaction import hash_email
from instantly_guard.webhook.receiver import build_receiver
from instantly_guard.webhook.testing import SimpleRequest, delivery, sample_event

LEAD = "jordan.lee@prospect.example"


class _JsonLines(logging.Handler):
    """Formats each record as it is emitted (inside the request's trace context), as stdout would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines():
    handler = _JsonLines()
    logger = logging.getLogger("instantly_guard")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lambda: handler.lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_one_line_per_request_with_outcome_status_type_id_latency(tmp_path, lines):
    publisher = RecordingPublisher()
    receiver = build_receiver(local_env(tmp_path), publisher=publisher)
    payload = sample_event("reply_received", lead_email=LEAD)

    accepted = receiver.handle(delivery(payload, SECRET))
    duplicate = receiver.handle(delivery(payload, SECRET))
    refused = receiver.handle(delivery(payload, WRONG_SAME_LENGTH))
    publisher.fail_next()
    failed = receiver.handle(delivery(sample_event(step=9), SECRET))
    invalid = receiver.handle(delivery(b"[]", SECRET))

    records = lines()
    assert [r["outcome"] for r in records] == [
        "accepted",
        "duplicate",
        "unauthorized",
        "publish_failed",
        "invalid",
    ]
    assert [r["status"] for r in records] == [200, 200, 401, 503, 400]
    assert [r["severity"] for r in records] == ["INFO", "INFO", "WARNING", "ERROR", "WARNING"]
    first = records[0]
    assert first["event_type"] == "reply_received"
    assert first["event_id"] == accepted.json()["id"] == duplicate.json()["id"]
    assert isinstance(first["latency_ms"], float)
    assert first["lead"] == hash_email(LEAD)
    assert records[2]["reason"] == "wrong credentials"
    assert "event_id" not in records[2]  # the body of a refused request is never read
    assert "injected publish failure" in records[3]["detail"]
    assert "payload must be a JSON object" in records[4]["detail"]
    assert (refused.status, failed.status, invalid.status) == (401, 503, 400)

    text = "\n".join(json.dumps(r) for r in records)
    assert SECRET not in text
    assert WRONG_SAME_LENGTH not in text
    assert LEAD not in text


def test_configuration_error_is_logged_once_without_the_value(tmp_path, lines):
    receiver = build_receiver(local_env(tmp_path, INSTANTLY_WEBHOOK_SECRET="tooshort-secret"))

    for _ in range(5):
        assert receiver.handle(delivery(sample_event(), "tooshort-secret")).status == 503

    records = lines()
    errors = [r for r in records if r.get("outcome") == "configuration_error"]
    assert len(errors) == 1
    assert errors[0]["severity"] == "ERROR"
    assert "shorter than 16 bytes" in errors[0]["message"]
    assert len([r for r in records if r.get("outcome") == "unavailable"]) == 5
    assert "tooshort-secret" not in json.dumps(records)


def test_trace_header_is_attached(tmp_path, lines):
    receiver = build_receiver(
        local_env(tmp_path, GOOGLE_CLOUD_PROJECT="proj-1"), publisher=RecordingPublisher()
    )
    request = delivery(
        sample_event(),
        SECRET,
        extra_headers={"X-Cloud-Trace-Context": "0123456789abcdef0123456789abcdef/42;o=1"},
    )

    receiver.handle(request)

    [record] = lines()
    assert (
        record["logging.googleapis.com/trace"]
        == "projects/proj-1/traces/0123456789abcdef0123456789abcdef"
    )


def test_refused_method_is_logged_without_reading_the_body(tmp_path, lines):
    receiver = build_receiver(local_env(tmp_path), publisher=RecordingPublisher())

    response = receiver.handle(SimpleRequest(method="GET", headers={}))

    assert response.status == 405
    [record] = lines()
    assert record["outcome"] == "method_not_allowed"


def test_unexpected_error_answers_503_and_logs_one_redacted_line(tmp_path, lines):
    from instantly_guard.webhook.dedupe import RecentIds

    class BrokenIds(RecentIds):
        def claim(self, event_id, wait):
            raise RuntimeError(f"bug while holding {SECRET}")

    publisher = RecordingPublisher()
    receiver = build_receiver(local_env(tmp_path), publisher=publisher)
    receiver.deps = dataclasses.replace(receiver.deps, recent=BrokenIds(60))

    response = receiver.handle(delivery(sample_event(), SECRET))

    assert response.status == 503
    assert response.json() == {"error": "unavailable, retry later"}
    assert publisher.messages == []
    [record] = lines()
    assert (record["outcome"], record["status"], record["severity"]) == (
        "internal_error",
        503,
        "ERROR",
    )
    assert record["detail"] == "RuntimeError"
    assert "bug while holding ***" in record["stack_trace"]
    assert SECRET not in json.dumps(record)
