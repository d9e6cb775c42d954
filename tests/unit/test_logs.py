import io
import json
import logging
from collections.abc import Iterator

import pytest

from instantly_guard.logs import bind_request_context, configure_logging
from instantly_guard.secret import Secret


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream, labels={"function": "test"})
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_instantly_guard", False):
            root.removeHandler(handler)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_record_with_severity_and_labels(log_stream: io.StringIO) -> None:
    logging.getLogger("t").warning("hello %s", "world", extra={"fields": {"count": 3}})
    (record,) = _records(log_stream)
    assert record["severity"] == "WARNING"
    assert record["message"] == "hello world"
    assert record["count"] == 3
    assert record["logging.googleapis.com/labels"] == {"function": "test"}


def test_trace_from_cloud_trace_context(log_stream: io.StringIO) -> None:
    with bind_request_context("105445aa7843bc8bf206b12000100000/1;o=1", "my-project"):
        logging.getLogger("t").info("inside")
    logging.getLogger("t").info("outside")
    inside, outside = _records(log_stream)
    assert inside["logging.googleapis.com/trace"] == (
        "projects/my-project/traces/105445aa7843bc8bf206b12000100000"
    )
    assert inside["logging.googleapis.com/spanId"] == "1"
    assert "logging.googleapis.com/trace" not in outside


def test_malformed_trace_header_is_ignored(log_stream: io.StringIO) -> None:
    with bind_request_context("not a trace", "my-project"):
        logging.getLogger("t").info("x")
    (record,) = _records(log_stream)
    assert "logging.googleapis.com/trace" not in record


def test_secrets_tokens_and_emails_never_reach_the_line(log_stream: io.StringIO) -> None:
    key = Secret("sk_live_0123456789abcdef")
    value = key.reveal()
    logger = logging.getLogger("t")
    logger.info("calling with %s", value, extra={"fields": {"key": value, "obj": key}})
    logger.info("header Authorization: Bearer %s", "unregistered-token-xyz")
    logger.info("lead %s", "someone@example.org", extra={"fields": {"lead_email": "a@b.io"}})
    try:
        raise RuntimeError(f"failed with {value}")
    except RuntimeError:
        logger.exception("boom")
    text = log_stream.getvalue()
    assert value not in text
    assert "unregistered-token-xyz" not in text
    assert "someone@example.org" not in text
    assert "a@b.io" not in text
    assert "email:" in text
    assert len(_records(log_stream)) == 4


def test_secrets_and_emails_used_as_field_keys_are_masked(log_stream: io.StringIO) -> None:
    value = Secret("whsec_keyed_by_value_0123456789").reveal()
    logging.getLogger("t").info(
        "counts", extra={"fields": {"by_secret": {value: 1}, "by_lead": {"lead@example.org": 2}}}
    )
    text = log_stream.getvalue()
    assert value not in text
    assert "lead@example.org" not in text


def test_configure_twice_keeps_one_handler(log_stream: io.StringIO) -> None:
    configure_logging("INFO", stream=log_stream)
    logging.getLogger("t").info("once")
    assert len(_records(log_stream)) == 1


def test_a_secret_that_json_escapes_is_still_masked(log_stream: io.StringIO) -> None:
    value = Secret('tab\there"quoted-0123456789').reveal()
    logging.getLogger("t").info("got %s", value, extra={"fields": {"v": value, "k": {value: 1}}})
    text = log_stream.getvalue()
    assert json.dumps(value)[1:-1] not in text
    (record,) = _records(log_stream)
    assert record["v"] == "***"
    assert record["k"] == {"***": 1}


def test_httpx_request_lines_are_held_back_even_at_debug(log_stream: io.StringIO) -> None:
    import http.server
    import threading

    import httpx

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        httpx.get(f"http://127.0.0.1:{server.server_port}/secret-path?token=abc", timeout=10)
    finally:
        thread.join(timeout=10)
        server.server_close()
    assert "secret-path" not in log_stream.getvalue()
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


def test_a_record_about_a_secret_names_it_in_the_message(log_stream: io.StringIO) -> None:
    log = logging.getLogger("instantly_guard.test")
    fields = {"version": "3", "secret": "audit-key"}  # pragma: allowlist secret
    log.info("key stored", extra={"fields": fields})
    log.info("rotated audit-key", extra={"fields": fields | {"version": "4"}})
    first, second = _records(log_stream)
    assert first["message"] == "audit-key: key stored"
    assert first["version"] == "3"
    assert second["message"] == "rotated audit-key"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_readable_lines_on_a_terminal_json_otherwise() -> None:
    terminal = _Terminal()
    configure_logging("INFO", stream=terminal)
    about = {"secret": "audit-key"}  # pragma: allowlist secret
    try:
        logging.getLogger("instantly_guard.test").warning(
            "key %s", Secret("sk-live-123456789"), extra={"fields": about}
        )
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_instantly_guard", False):
                logging.getLogger().removeHandler(handler)
    line = terminal.getvalue()
    assert not line.startswith("{")
    assert "WARNING instantly_guard.test: audit-key: key Secret('***')" in line
    assert "secret=audit-key" in line
    assert "sk-live" not in line
