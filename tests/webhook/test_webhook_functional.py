"""receive_webhook driven through functions-framework's app, one case per rule of the
receiver (see the order of checks in `instantly_guard.webhook.handler`)."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import pytest
from webhook_support import PREVIOUS, SECRET, WRONG_SAME_LENGTH, json_headers

from instantly_guard.publish.local import read_outbox
from instantly_guard.webhook.receiver import FILE_STAT_INTERVAL
from instantly_guard.webhook.testing import sample_event

UNAUTHORIZED = {"error": "unauthorized"}


def post(client, payload=None, *, secret=SECRET, data=None, **headers):
    body = data if data is not None else json.dumps(payload or sample_event()).encode()
    return client.post("/", data=body, headers={**json_headers(secret), **headers})


def outbox(state_dir: Path) -> list[dict]:
    return [m.as_json() for m in read_outbox(state_dir)]


def test_genuine_delivery_is_stored_before_200(client, state_dir):
    payload = sample_event("reply_received", firstName="Jordan", companyName="Prospect Ltd")

    response = post(client, payload)

    assert response.status_code == 200
    body = response.get_json()
    assert body == {"received": True, "id": body["id"]}
    [stored] = outbox(state_dir)
    assert stored["id"] == body["id"]
    assert stored["data"] == payload  # extra lead fields kept
    attributes = stored["attributes"]
    assert attributes["event_type"] == "reply_received"
    assert attributes["workspace"] == payload["workspace"]
    assert attributes["campaign_id"] == payload["campaign_id"]
    assert attributes["event_id"] == body["id"]
    assert attributes["custom"] == "false"
    assert attributes["received_at"].endswith("+00:00")


def test_wrong_secret_of_same_length_is_rejected(client, state_dir):
    assert len(WRONG_SAME_LENGTH) == len(SECRET)

    response = post(client, secret=WRONG_SAME_LENGTH)

    assert response.status_code == 401
    assert response.get_json() == UNAUTHORIZED
    assert outbox(state_dir) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-webhook-secret": ""},
        {"x-webhook-secret": SECRET[:16]},
        {"x-webhook-secret": SECRET + "x"},
        {"Authorization": f"Bearer {SECRET}"},
    ],
    ids=["missing", "empty", "prefix", "longer", "bearer"],
)
def test_every_refusal_has_the_same_body(client, headers):
    response = post(client, secret=None, **headers)

    assert response.status_code == 401
    assert response.data == b'{"error":"unauthorized"}'


def test_previous_secret_accepted_only_when_configured(make_client):
    without = make_client()
    assert post(without, secret=PREVIOUS).status_code == 401

    with_previous = make_client(INSTANTLY_WEBHOOK_SECRET_PREVIOUS=PREVIOUS)
    assert post(with_previous, sample_event(step=2), secret=PREVIOUS).status_code == 200
    assert post(with_previous, sample_event(step=3), secret=SECRET).status_code == 200


def test_custom_secret_header(make_client):
    client = make_client(WEBHOOK_SECRET_HEADER="X-Instantly-Token")

    assert post(client, secret=None, **{"X-Instantly-Token": SECRET}).status_code == 200
    assert post(client).status_code == 401  # the default header no longer counts


def test_missing_secret_answers_503_to_everything_and_logs_once(make_client, caplog):
    client = make_client(INSTANTLY_WEBHOOK_SECRET=None)
    caplog.set_level(logging.INFO, logger="instantly_guard")

    statuses = [
        post(client).status_code,
        post(client, secret=None).status_code,
        client.get("/").status_code,
    ]

    assert statuses == [503, 503, 503]
    errors = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "could not be built" in r.getMessage()
    ]
    assert len(errors) == 1
    assert "INSTANTLY_WEBHOOK_SECRET" in errors[0].getMessage()


def test_short_secret_answers_503(make_client, state_dir):
    client = make_client(INSTANTLY_WEBHOOK_SECRET="fifteen-bytes!!")

    response = post(client, secret="fifteen-bytes!!")

    assert response.status_code == 503
    assert outbox(state_dir) == []


def test_invalid_settings_answer_503(make_client):
    client = make_client(WEBHOOK_MAX_BODY_BYTES="lots")

    assert post(client).status_code == 503


def test_oversized_body_gets_413(client, state_dir):
    payload = sample_event(padding="x" * 300_000)

    response = post(client, payload)

    assert response.status_code == 413
    assert outbox(state_dir) == []


def test_oversized_chunked_body_without_content_length_gets_413(client, state_dir):
    body = json.dumps(sample_event(padding="x" * 300_000)).encode()

    response = client.post(
        "/",
        input_stream=io.BytesIO(body),
        headers={**json_headers(), "Transfer-Encoding": "chunked"},
        # What gunicorn sets for a chunked request: the stream ends where the body ends.
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 413
    assert outbox(state_dir) == []


def test_body_limit_is_configurable(make_client):
    client = make_client(WEBHOOK_MAX_BODY_BYTES="2048")

    assert post(client, sample_event(note="x" * 1000)).status_code == 200
    assert post(client, sample_event(note="x" * 3000)).status_code == 413


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"", "body is empty"),
        (b"[1, 2]", "payload must be a JSON object, got an array"),
        (b'"text"', "payload must be a JSON object, got a string"),
        (b'{"timestamp": "2025-01-15T10:30:00Z"}', "event_type is required"),
        (
            b'{"timestamp": "2025-01-15T10:30:00Z", "event_type": 7}',
            "event_type must be a non-empty string",
        ),
        (b'{"event_type": "email_sent"}', "timestamp is required"),
        (b'{"event_type": "email_sent", "timestamp": "yesterday"}', "timestamp is not an ISO-8601"),
        (
            b'{"event_type": "email_sent", "timestamp": 1736937000}',
            "timestamp must be an ISO-8601 string",
        ),
        (
            b'{"event_type": "email_sent", "timestamp": "2025-01-15T10:30:00Z", "step": "two"}',
            "step",
        ),
        (b"\xff\xfe{}", "body is not UTF-8"),
    ],
    ids=[
        "malformed",
        "empty",
        "array",
        "string",
        "no-event-type",
        "event-type-not-string",
        "no-timestamp",
        "bad-timestamp",
        "numeric-timestamp",
        "wrong-field-type",
        "not-utf8",
    ],
)
def test_bad_payloads_get_400_naming_the_problem(client, state_dir, data, message):
    response = post(client, data=data)

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid payload"
    assert message in body["detail"]
    assert outbox(state_dir) == []


@pytest.mark.parametrize("event_type", ["Hot lead - call today", "brand_new_instantly_event"])
def test_unknown_event_types_are_accepted_as_custom(client, state_dir, event_type):
    response = post(client, sample_event(event_type))

    assert response.status_code == 200
    [stored] = outbox(state_dir)
    assert stored["attributes"]["event_type"] == event_type
    assert stored["attributes"]["custom"] == "true"


def test_link_clicked_is_a_known_event(client, state_dir):
    assert post(client, sample_event("link_clicked")).status_code == 200
    [stored] = outbox(state_dir)
    assert stored["attributes"]["custom"] == "false"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(client, method):
    response = client.open("/", method=method, headers=json_headers())

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_non_json_content_types_get_415(client, content_type):
    headers = {"x-webhook-secret": SECRET}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/", data=json.dumps(sample_event()), headers=headers)

    assert response.status_code == 415


def test_json_with_charset_is_accepted(client):
    response = post(client, **{"Content-Type": "application/json; charset=utf-8"})

    assert response.status_code == 200


def test_authentication_comes_before_content_checks(client):
    """An unauthenticated caller learns nothing about what else would be accepted."""
    assert post(client, secret=None, data=b"not json").status_code == 401
    assert client.post("/", data=b"x", headers={"Content-Type": "text/plain"}).status_code == 401
    big = json.dumps(sample_event(padding="x" * 300_000)).encode()
    assert post(client, secret=WRONG_SAME_LENGTH, data=big).status_code == 401


def test_duplicate_is_answered_without_publishing_again(client, state_dir):
    payload = sample_event()
    first = post(client, payload)
    # The same event with other spacing and key order is the same event.
    reordered = json.dumps(dict(reversed(list(payload.items()))), indent=2).encode()
    second = post(client, data=reordered)

    assert first.status_code == second.status_code == 200
    assert second.get_json() == {"received": True, "id": first.get_json()["id"], "duplicate": True}
    assert len(outbox(state_dir)) == 1


def test_publish_failure_answers_503_and_loses_nothing(make_client, state_dir):
    client = make_client()
    outbox_dir = state_dir / "outbox"
    outbox_dir.parent.mkdir(parents=True)
    outbox_dir.write_text("a file where the outbox directory should be")
    payload = sample_event()

    failed = post(client, payload)

    assert failed.status_code == 503
    assert failed.get_json() == {"error": "unavailable, retry later"}

    # The backend recovers; Instantly's retry of the same event is accepted, and stored once.
    outbox_dir.unlink()
    retried = post(client, payload)
    again = post(client, payload)

    assert retried.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert [m["id"] for m in outbox(state_dir)] == [retried.get_json()["id"]]


def test_basic_auth_is_accepted_when_configured(make_client):
    import base64

    password = "basic-password-0123456789"
    client = make_client(WEBHOOK_BASIC_USER="instantly", WEBHOOK_BASIC_PASSWORD=password)

    def basic(user, pw):
        return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()

    assert (
        post(
            client, sample_event(step=1), secret=None, Authorization=basic("instantly", password)
        ).status_code
        == 200
    )
    assert (
        post(
            client,
            sample_event(step=2),
            secret=None,
            Authorization=basic("instantly", password[:-1] + "X"),
        ).status_code
        == 401
    )
    assert (
        post(
            client, sample_event(step=3), secret=None, Authorization=basic("other", password)
        ).status_code
        == 401
    )
    assert post(client, sample_event(step=4)).status_code == 200  # the header secret still works


def test_basic_auth_is_ignored_when_not_configured(client):
    import base64

    token = base64.b64encode(f"instantly:{SECRET}".encode()).decode()
    assert post(client, secret=None, Authorization=f"Basic {token}").status_code == 401


def test_source_address_allow_list(make_client):
    client = make_client(WEBHOOK_ALLOWED_CIDRS="203.0.113.0/24, 2001:db8::/32")

    inside = post(client, sample_event(step=1), **{"X-Forwarded-For": "203.0.113.7"})
    # A forged left-hand entry does not help: the right-most one was added by Google's front end.
    forged = post(client, sample_event(step=2), **{"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
    outside = post(client, sample_event(step=3), **{"X-Forwarded-For": "198.51.100.9"})
    v6 = post(client, sample_event(step=4), **{"X-Forwarded-For": "1.2.3.4, 2001:db8::5"})

    assert [inside.status_code, forged.status_code, outside.status_code, v6.status_code] == [
        200,
        401,
        401,
        200,
    ]
    assert forged.get_json() == UNAUTHORIZED


def test_proxy_hops_behind_a_load_balancer(make_client):
    client = make_client(WEBHOOK_ALLOWED_CIDRS="203.0.113.0/24", WEBHOOK_PROXY_HOPS="2")

    via_lb = post(client, **{"X-Forwarded-For": "10.9.9.9, 203.0.113.7, 34.120.0.1"})
    too_short = post(client, sample_event(step=9), **{"X-Forwarded-For": "203.0.113.7"})

    assert via_lb.status_code == 200
    assert too_short.status_code == 401


def test_rotated_secret_file_is_picked_up_without_restart(make_client, tmp_path):
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    client = make_client(
        INSTANTLY_WEBHOOK_SECRET=None, INSTANTLY_WEBHOOK_SECRET_FILE=str(secret_file)
    )
    new = "wh-new-secret-after-rotation-0123456789"
    assert post(client, sample_event(step=1)).status_code == 200
    assert post(client, sample_event(step=2), secret=new).status_code == 401

    # The rotation writes a version naming both secrets (new current, old previous until expiry);
    # a Secret Manager volume swaps the file in place.
    staged = tmp_path / "staged"
    staged.write_text(
        json.dumps(
            {"current": new, "previous": SECRET, "previous_expires_at": "2999-01-01T00:00:00Z"}
        )
    )
    os.replace(staged, secret_file)
    assert post(client, sample_event(step=3), secret=new).status_code == 200
    assert post(client, sample_event(step=4)).status_code == 200

    # The grace period ended: only the new secret remains.
    staged.write_text(
        json.dumps(
            {"current": new, "previous": SECRET, "previous_expires_at": "2000-01-01T00:00:00Z"}
        )
    )
    os.replace(staged, secret_file)
    assert post(client, sample_event(step=5), secret=new).status_code == 200
    # The file is looked at once a second (`FILE_STAT_INTERVAL`): the old secret is refused from
    # then on (a Secret Manager volume itself takes far longer to show a new version).
    time.sleep(FILE_STAT_INTERVAL)
    assert post(client, sample_event(step=6)).status_code == 401


def test_broken_secret_file_fails_closed_until_fixed(make_client, tmp_path):
    secret_file = tmp_path / "webhook-secret"
    client = make_client(
        INSTANTLY_WEBHOOK_SECRET=None, INSTANTLY_WEBHOOK_SECRET_FILE=str(secret_file)
    )

    assert post(client, sample_event(step=1)).status_code == 503  # not there yet
    secret_file.write_text('{"current": "too-short"}')
    assert post(client, sample_event(step=2)).status_code == 503
    secret_file.write_text(SECRET)
    assert post(client, sample_event(step=3)).status_code == 200


class CountingStream(io.BytesIO):
    """A request body that records how many bytes the application read from it."""

    consumed = 0

    def read(self, size=-1):
        data = super().read(size)
        self.consumed += len(data)
        return data

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.consumed += count
        return count


@pytest.mark.parametrize(
    ("secret", "status", "max_read"),
    [(WRONG_SAME_LENGTH, 401, 0), (SECRET, 413, 262144 + 1)],
    ids=["refused", "oversized"],
)
def test_body_is_never_read_past_the_limit(client, secret, status, max_read):
    """Not by the handler, nor by functions-framework's after-request hook (the response is
    streamed so that hook skips reading the rest)."""
    stream = CountingStream(json.dumps(sample_event(pad="x" * 2_000_000)).encode())

    response = client.post(
        "/",
        input_stream=stream,
        headers={**json_headers(secret), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == status
    assert stream.consumed <= max_read


def test_chunked_body_within_the_limit_is_accepted(client, state_dir):
    body = json.dumps(sample_event()).encode()

    response = client.post(
        "/",
        input_stream=io.BytesIO(body),
        headers={**json_headers(), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 200
    assert len(outbox(state_dir)) == 1


class BrokenStream(io.BytesIO):
    def read(self, size=-1):
        raise OSError("connection reset by peer")


def test_unreadable_body_gets_400(client, state_dir):
    response = client.post(
        "/",
        input_stream=BrokenStream(b"{}"),
        headers={**json_headers(), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 400
    assert response.get_json() == {"error": "could not read the request body"}
    assert outbox(state_dir) == []


def test_lone_surrogates_in_the_payload_do_not_break_attributes(client, state_dir):
    body = (
        b'{"event_type": "\\udc80label", "timestamp": "2025-01-01T00:00:00Z", "workspace": "\\ud800",'
        b' "lead_email": "\\ud800@example.com"}'
    )

    response = post(client, data=body)

    assert response.status_code == 200
    [stored] = outbox(state_dir)
    assert stored["attributes"]["event_type"] == "?label"
    assert stored["data"]["event_type"] == "\udc80label"  # the payload itself is kept as sent


@pytest.mark.parametrize("suffix", ["\xa0", "\x85"], ids=["nbsp", "nel"])
def test_a_secret_followed_by_non_http_whitespace_is_rejected(client, state_dir, suffix):
    # The byte 0xA0 / 0x85 on the wire: str.strip() would have removed it and accepted.
    response = post(client, secret=SECRET + suffix)

    assert response.status_code == 401
    assert outbox(state_dir) == []
    assert post(client, secret=f" {SECRET}\t").status_code == 200


def test_a_media_type_padded_with_nbsp_is_not_json(client):
    headers = {"x-webhook-secret": SECRET, "Content-Type": "application/json\xa0"}
    response = client.post("/", data=json.dumps(sample_event()), headers=headers)

    assert response.status_code == 415
