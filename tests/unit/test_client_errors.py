"""How the Instantly client maps answers (and missing answers) to the exception tree."""

from __future__ import annotations

import traceback

import httpx
import pytest
from tests.unit.instantly_fakes import (
    KEY,
    ScriptedApi,
    SwitchingKey,
    api_key,
    error,
    make_client,
    ok,
    page,
    workspace,
)

from instantly_guard.errors import (
    AuthenticationError,
    InstantlyError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitedError,
    ScopeError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)

SCOPE_401 = "Invalid scope. Required: api_keys:read. Found: campaigns:read, leads:all"


def _raised(reply: httpx.Response | Exception, call: str = "keys") -> InstantlyError:
    client, _ = make_client(ScriptedApi(reply), max_retries=0)

    def run() -> object:
        if call == "keys":
            return list(client.list_api_keys())
        return client.create_api_key("name", ["all:all"])

    with pytest.raises(InstantlyError) as info:
        run()
    return info.value


@pytest.mark.parametrize(
    ("status", "message", "expected", "retryable"),
    [
        (401, "Invalid API key", AuthenticationError, False),
        (401, SCOPE_401, ScopeError, False),
        (402, "Workspace does not have an active paid plan", PaymentRequiredError, False),
        (403, "Forbidden", PermissionDeniedError, False),
        (403, "Insufficient scope for this operation", ScopeError, False),
        (404, "Resource not found", NotFoundError, False),
        (400, "querystring/limit must be <= 100", InvalidRequestError, False),
        (409, "Conflict", InvalidRequestError, False),
        (429, "Rate limit exceeded", RateLimitedError, True),
        (500, "Internal Server Error", ServerError, True),
        (503, "Service Unavailable", ServerError, True),
    ],
)
def test_status_maps_to_its_exception(
    status: int, message: str, expected: type[InstantlyError], retryable: bool
) -> None:
    exc = _raised(error(status, message))
    assert type(exc) is expected
    assert (exc.status, exc.method, exc.path, exc.retryable) == (
        status,
        "GET",
        "/api-keys",
        retryable,
    )
    assert exc.message.startswith(message)


def test_real_world_scope_401_is_parsed() -> None:
    exc = _raised(error(401, SCOPE_401))
    assert isinstance(exc, ScopeError)
    assert exc.required == ("api_keys:read",)
    assert exc.found == ("campaigns:read", "leads:all")
    assert not isinstance(exc, AuthenticationError)


def test_documented_scope_403_is_parsed_too() -> None:
    exc = _raised(error(403, "Invalid scope. Required: audit_logs:read. Found: webhooks:all"))
    assert isinstance(exc, ScopeError)
    assert exc.status == 403
    assert exc.required == ("audit_logs:read",)
    assert exc.found == ("webhooks:all",)


# Every wording of a missing scope seen or plausible: the real 401 with `Found:`, the same
# without it (public reports), the documented 403, and messages that name no scope at all (then
# the scope the OpenAPI document lists for the call, here GET /api-keys, is named instead).
SCOPE_FORMS = [
    (401, SCOPE_401, ("api_keys:read",), ("campaigns:read", "leads:all")),
    (401, "Invalid scope. Required: audit_logs:read", ("audit_logs:read",), ()),
    (401, "Invalid scope. Required: audit_logs:read.", ("audit_logs:read",), ()),
    (403, "Invalid scope. Required: audit_logs:read", ("audit_logs:read",), ()),
    (403, "Missing required scopes: background-jobs:read", ("background-jobs:read",), ()),
    (401, "API key does not have the required scope", ("api_keys:read",), ()),
    (403, "Insufficient scope for this operation", ("api_keys:read",), ()),
    (401, "Invalid scope. Required: a:b. Found: ", ("api_keys:read",), ()),
]


@pytest.mark.parametrize(("status", "message", "required", "found"), SCOPE_FORMS)
def test_every_scope_wording_is_a_scope_error_never_a_bad_key(
    status: int, message: str, required: tuple[str, ...], found: tuple[str, ...]
) -> None:
    exc = _raised(error(status, message))
    assert type(exc) is ScopeError
    assert (exc.status, exc.required, exc.found) == (status, required, found)
    assert required[0] in str(exc)


@pytest.mark.parametrize(("status", "message"), [(s, m) for s, m, _, _ in SCOPE_FORMS])
def test_a_scope_error_does_not_refresh_the_key(status: int, message: str) -> None:
    provider = SwitchingKey("first-key-aaaaaa", "second-key-bbbbbb")
    api = ScriptedApi(error(status, message), ok(workspace()))
    client, _ = make_client(api, key=provider, max_retries=0)
    with pytest.raises(ScopeError):
        client.get_current_workspace()
    assert provider.refreshes == 0
    assert api.count == 1


def test_rate_limited_carries_retry_after_seconds() -> None:
    exc = _raised(error(429, "Rate limit exceeded", **{"Retry-After": "7"}))
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == 7.0


def test_request_id_comes_from_the_answer() -> None:
    exc = _raised(error(404, "Resource not found", **{"x-request-id": "req-42"}))
    assert exc.request_id == "req-42"
    assert _raised(error(500, "boom", **{"cf-ray": "8a1b-AMS"})).request_id == "8a1b-AMS"


def test_html_from_an_edge_is_described_not_quoted() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>"
    reply = httpx.Response(502, text=html, headers={"content-type": "text/html; charset=UTF-8"})
    exc = _raised(reply)
    assert isinstance(exc, ServerError)
    assert exc.status == 502
    assert "<html>" not in str(exc)
    assert "text/html" in exc.message
    assert f"{len(html)} bytes" in exc.message


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500),
        httpx.Response(500, json=["not", "an", "envelope"]),
        httpx.Response(500, json={"statusCode": 500}),
    ],
)
def test_error_body_that_is_not_the_envelope_is_handled(reply: httpx.Response) -> None:
    exc = _raised(reply)
    assert isinstance(exc, ServerError)
    assert "not Instantly's JSON error body" in exc.message


def test_list_messages_of_validation_errors_are_joined() -> None:
    exc = _raised(httpx.Response(400, json={"statusCode": 400, "message": ["a is bad", "b too"]}))
    assert exc.message == "a is bad; b too"


def test_redirect_is_unexpected_not_followed() -> None:
    exc = _raised(httpx.Response(301, headers={"location": "https://elsewhere.test/"}))
    assert isinstance(exc, UnexpectedResponseError)
    assert exc.status == 301
    assert not exc.retryable


@pytest.mark.parametrize(
    ("failure", "fragment"),
    [
        (httpx.ConnectError("refused"), "could not connect (ConnectError)"),
        (httpx.ConnectTimeout("slow"), "timed out (ConnectTimeout)"),
        (httpx.ReadTimeout("slow"), "timed out (ReadTimeout)"),
        (httpx.RemoteProtocolError("dropped"), "no usable answer (RemoteProtocolError)"),
    ],
)
def test_no_answer_is_a_transport_error(failure: Exception, fragment: str) -> None:
    exc = _raised(failure)
    assert isinstance(exc, TransportError)
    assert exc.status is None
    assert exc.retryable
    assert fragment in exc.message
    assert isinstance(exc.__cause__, httpx.TransportError)


def test_path_in_errors_has_no_query_string() -> None:
    client, _ = make_client(ScriptedApi(error(400, "bad")), max_retries=0)
    with pytest.raises(InvalidRequestError) as info:
        list(client.iter_audit_logs(search="secret-ish-search"))
    assert info.value.path == "/audit-logs"
    assert "secret-ish-search" not in str(info.value)


def test_success_that_is_not_json_is_unexpected() -> None:
    exc = _raised(httpx.Response(200, text="<html>maintenance</html>"))
    assert isinstance(exc, UnexpectedResponseError)
    assert exc.status == 200
    assert "not JSON" in exc.message
    assert not exc.retryable


def test_success_of_the_wrong_shape_is_unexpected_and_names_the_field() -> None:
    exc = _raised(page([{"id": "x"}]))
    assert isinstance(exc, UnexpectedResponseError)
    assert "Page[ApiKey]" in exc.message
    assert "items.0.name: Field required" in exc.message


def test_a_created_key_never_leaks_through_a_validation_error() -> None:
    # A create answer missing a field still carries the key: the error must not quote it.
    body = api_key(key=KEY)
    del body["name"]
    exc = _raised(ok(body), call="create")
    assert isinstance(exc, UnexpectedResponseError)
    rendered = "".join(traceback.format_exception(exc))
    assert KEY not in rendered
    assert KEY not in repr(exc)
    assert KEY not in str(exc.__dict__)
    assert "name: Field required" in exc.message


@pytest.mark.parametrize(
    "reply",
    [
        error(401, "Invalid API key"),
        error(401, SCOPE_401),
        error(500, "boom"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, text="nope"),
    ],
)
def test_the_key_is_in_no_error_text_or_traceback(reply: httpx.Response | Exception) -> None:
    exc = _raised(reply)
    rendered = "".join(traceback.format_exception(exc))
    for text in (str(exc), repr(exc), rendered, str(vars(exc))):
        assert KEY not in text
    assert "Bearer" not in rendered


def test_server_message_goes_through_the_redactor() -> None:
    exc = _raised(error(400, "lead jane.doe@example.com is invalid"))
    assert "jane.doe@example.com" not in exc.message
    assert "email:" in exc.message
