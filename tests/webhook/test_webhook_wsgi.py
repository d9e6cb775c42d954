"""`webhook.wsgi`: the receiver's request view reads what Werkzeug's request would, value for value."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import EnvironHeaders as WerkzeugHeaders
from werkzeug.wrappers import Request

from instantly_guard.webhook.testing import wsgi_environ
from instantly_guard.webhook.wsgi import EnvironHeaders, WsgiRequest, environ_key

# Names the receiver asks for, and spellings that only differ in case or separators.
_NAMES = [
    "x-webhook-secret",
    "X-Webhook-Secret",
    "X-INSTANTLY-WEBHOOK-SECRET",
    "content-type",
    "Content-Type",
    "content-length",
    "CONTENT_LENGTH",
    "x-forwarded-for",
    "x-cloud-trace-context",
    "authorization",
    "transfer-encoding",
    "x_webhook_secret",
    "host",
]
_KEYS = [
    "HTTP_X_WEBHOOK_SECRET",
    "HTTP_X_INSTANTLY_WEBHOOK_SECRET",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_CONTENT_TYPE",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_CLOUD_TRACE_CONTEXT",
    "HTTP_AUTHORIZATION",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_HOST",
    "X_WEBHOOK_SECRET",
]
_VALUES = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=20)


def _environ(body: bytes = b"", **extra: str) -> dict[str, Any]:
    return wsgi_environ(body, REMOTE_ADDR="192.0.2.7", **extra)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(
        st.one_of(st.sampled_from(_NAMES), st.text(min_size=1, max_size=12)), max_size=6
    ),
    environ=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=8),
)
def test_every_header_reads_as_werkzeug_reads_it(names: list[str], environ: dict[str, str]) -> None:
    ours, theirs = EnvironHeaders(environ), WerkzeugHeaders(environ)
    for name in [*names, *_NAMES]:
        assert ours.get(name) == theirs.get(name), name


def test_the_environ_key_of_a_header() -> None:
    assert environ_key("x-webhook-secret") == "HTTP_X_WEBHOOK_SECRET"
    assert environ_key("Content-Type") == "CONTENT_TYPE"
    assert environ_key("content-length") == "CONTENT_LENGTH"


@pytest.mark.parametrize(
    "declared",
    [None, "", "0", "2048", "007", " 12", "12 ", "+5", "-1", "1e3", "abc", "²", "1" * 19, "1" * 30],
)
@pytest.mark.parametrize("transfer_encoding", [None, "chunked", "gzip", "Chunked"])
def test_content_length_is_werkzeugs(declared: str | None, transfer_encoding: str | None) -> None:
    extra: dict[str, str] = {}
    if declared is not None:
        extra["CONTENT_LENGTH"] = declared
    if transfer_encoding is not None:
        extra["HTTP_TRANSFER_ENCODING"] = transfer_encoding
    request = Request(_environ(**extra))
    assert WsgiRequest(request).content_length == request.content_length


def test_method_address_and_body_come_from_the_request() -> None:
    request = Request(
        _environ(body=b'{"a": 1}', CONTENT_LENGTH="8", CONTENT_TYPE="application/json")
    )
    view = WsgiRequest(request)
    assert (view.method, view.remote_addr) == ("POST", "192.0.2.7")
    assert view.headers.get("content-type") == "application/json"
    assert view.stream.read(100) == b'{"a": 1}'
