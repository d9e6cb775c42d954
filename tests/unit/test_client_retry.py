"""Which failures the Instantly client repeats, how long it waits, and the refresh-on-401 path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from tests.unit.instantly_fakes import (
    BASE_URL,
    KEY,
    FakeClock,
    ScriptedApi,
    SwitchingKey,
    api_key,
    audit_log,
    block_list_entry,
    error,
    make_client,
    ok,
    page,
    webhook,
    workspace,
)

from instantly_guard.errors import (
    AlreadyDeletedError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitedError,
    ScopeError,
    ServerError,
    TransportError,
)
from instantly_guard.instantly import InstantlyClient, RateLimiter, RetryPolicy, StaticKey
from instantly_guard.instantly.retry import parse_retry_after

SCOPE_401 = "Invalid scope. Required: api_keys:read. Found: campaigns:read"
ClientCall = Callable[[InstantlyClient], object]


# ---- backoff --------------------------------------------------------------------------------


def test_server_errors_on_a_read_are_retried_with_exponential_backoff() -> None:
    api = ScriptedApi(error(500, "boom"), error(502, "bad gw"), error(503, "busy"), ok(workspace()))
    client, clock = make_client(api)
    assert client.get_current_workspace().name == "My Workspace"
    assert api.count == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]  # base 0.5 s doubling; jitter pinned to its ceiling


def test_backoff_is_full_jitter() -> None:
    api = ScriptedApi(error(500, "boom"), error(500, "boom"), ok(workspace()))
    client, clock = make_client(api, jitter=0.25)
    client.get_current_workspace()
    assert clock.sleeps == [0.125, 0.25]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, random=lambda: 1.0)
    assert [policy.backoff(n) for n in range(5)] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_retries_stop_after_max_retries() -> None:
    api = ScriptedApi(error(500, "boom"))
    client, clock = make_client(api, max_retries=2)
    with pytest.raises(ServerError, match="boom"):
        client.get_current_workspace()
    assert api.count == 3
    assert len(clock.sleeps) == 2


def test_zero_max_retries_means_one_attempt() -> None:
    api = ScriptedApi(error(503, "busy"))
    client, clock = make_client(api, max_retries=0)
    with pytest.raises(ServerError):
        client.get_current_workspace()
    assert api.count == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ConnectError("no")],
)
def test_transport_errors_on_a_read_are_retried(failure: Exception) -> None:
    api = ScriptedApi(failure, ok(workspace()))
    client, clock = make_client(api)
    client.get_current_workspace()
    assert api.count == 2
    assert clock.sleeps == [0.5]


@pytest.mark.parametrize(
    "reply",
    [
        error(400, "bad"),
        error(401, SCOPE_401),
        error(402, "no plan"),
        error(403, "forbidden"),
        error(404, "Resource not found"),
    ],
)
def test_client_errors_are_never_retried(reply: httpx.Response) -> None:
    api = ScriptedApi(reply)
    client, clock = make_client(api)
    with pytest.raises(
        (
            InvalidRequestError,
            ScopeError,
            PaymentRequiredError,
            PermissionDeniedError,
            NotFoundError,
        )
    ):
        client.get_current_workspace()
    assert api.count == 1
    assert clock.sleeps == []


# ---- Retry-After and 429 ----------------------------------------------------------------------


def test_retry_after_seconds_is_honoured_on_429() -> None:
    api = ScriptedApi(error(429, "Rate limit exceeded", **{"Retry-After": "3"}), ok(workspace()))
    client, clock = make_client(api)
    client.get_current_workspace()
    assert clock.sleeps == [3.0]


def test_retry_after_http_date_is_honoured_on_503() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    api = ScriptedApi(
        error(503, "busy", **{"Retry-After": format_datetime(when, usegmt=True)}), ok(workspace())
    )
    client, clock = make_client(api)
    client.get_current_workspace()
    assert len(clock.sleeps) == 1
    assert 27 <= clock.sleeps[0] <= 30


def test_retry_after_beyond_the_cap_is_not_waited_out() -> None:
    api = ScriptedApi(error(429, "Rate limit exceeded", **{"Retry-After": "3600"}))
    client, clock = make_client(api)
    with pytest.raises(RateLimitedError) as info:
        client.get_current_workspace()
    assert info.value.retry_after == 3600.0
    assert api.count == 1
    assert clock.sleeps == []


def test_429_without_retry_after_waits_at_least_a_second() -> None:
    # Instantly documents no rate-limit headers; its window is one second.
    api = ScriptedApi(error(429, "Rate limit exceeded"), ok(workspace()))
    client, clock = make_client(api, jitter=0.01)
    client.get_current_workspace()
    assert clock.sleeps == [1.0]


def test_429_holds_back_every_caller_sharing_the_limiter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1000, 100_000, clock=clock, sleep=clock.sleep)
    others_waited: list[float] = []

    def sleep(seconds: float) -> None:
        # While this client backs off, another caller in the process asks the same limiter.
        others_waited.append(limiter.acquire())
        clock.sleep(seconds)

    api = ScriptedApi(error(429, "Rate limit exceeded", **{"Retry-After": "4"}), ok(workspace()))
    client = InstantlyClient(
        StaticKey(KEY),
        BASE_URL,
        transport=httpx.MockTransport(api),
        rate_limiter=limiter,
        sleep=sleep,
    )
    client.get_current_workspace()
    assert others_waited == [4.0]


def test_429_is_retried_even_for_a_create() -> None:
    # A 429 is answered before the request is processed: nothing was created.
    api = ScriptedApi(error(429, "Rate limit exceeded"), ok(api_key(key="fresh-key-abcdef")))
    client, _ = make_client(api)
    created = client.create_api_key("n", ["audit_logs:read"])
    assert created.key.reveal() == "fresh-key-abcdef"
    assert api.count == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


# ---- what is safe to repeat ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure", [error(500, "boom"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")]
)
def test_create_api_key_is_never_repeated_once_instantly_may_have_acted(
    failure: httpx.Response | Exception,
) -> None:
    api = ScriptedApi(failure, ok(api_key()))
    client, clock = make_client(api)
    with pytest.raises((ServerError, TransportError)) as info:
        client.create_api_key("guard/x/r1", ["audit_logs:read"])
    assert api.count == 1
    assert clock.sleeps == []
    assert "the key may have been created" in str(info.value)
    assert "list keys by name" in str(info.value)


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
def test_create_api_key_is_repeated_when_the_request_never_left(failure: Exception) -> None:
    api = ScriptedApi(failure, ok(api_key(key="fresh-key-abcdef")))
    client, _ = make_client(api)
    client.create_api_key("guard/x/r1", ["audit_logs:read"])
    assert api.count == 2


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.create_webhook(target_hook_url="https://h.test/", event_type=None), webhook()),
        (lambda c: c.create_block_list_entry("rival.example"), block_list_entry()),
    ],
)
def test_other_creates_are_not_repeated_after_a_server_error(
    call: ClientCall, body: dict[str, object]
) -> None:
    api = ScriptedApi(error(500, "boom"), ok(body))
    client, _ = make_client(api)
    with pytest.raises(ServerError, match="the change may have been made; not retried"):
        call(client)
    assert api.count == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.resume_webhook("w1"),
        lambda c: c.update_webhook("w1", name="renamed"),
        lambda c: c.get_webhook("w1"),
        lambda c: c.delete_webhook("w1"),
    ],
)
def test_idempotent_webhook_calls_are_repeated_after_a_lost_answer(call: ClientCall) -> None:
    api = ScriptedApi(httpx.ReadTimeout("slow"), error(502, "bad gw"), ok(webhook()))
    client, _ = make_client(api)
    call(client)
    assert api.count == 3


def test_delete_after_a_lost_answer_that_finds_nothing_says_already_deleted() -> None:
    api = ScriptedApi(httpx.ReadTimeout("slow"), error(404, "Resource not found"))
    client, _ = make_client(api)
    with pytest.raises(AlreadyDeletedError) as info:
        client.delete_api_key("k1")
    assert isinstance(info.value, NotFoundError)  # "gone" handlers still catch it
    assert info.value.path == "/api-keys/k1"
    assert info.value.status == 404
    assert api.count == 2


def test_delete_of_a_missing_key_is_a_plain_not_found() -> None:
    api = ScriptedApi(error(404, "Resource not found"))
    client, _ = make_client(api)
    with pytest.raises(NotFoundError) as info:
        client.delete_api_key("k1")
    assert type(info.value) is NotFoundError


def test_delete_after_a_429_that_finds_nothing_is_a_plain_not_found() -> None:
    # The 429 was answered before anything happened, so the key was never ours to delete.
    api = ScriptedApi(error(429, "Rate limit exceeded"), error(404, "Resource not found"))
    client, _ = make_client(api)
    with pytest.raises(NotFoundError) as info:
        client.delete_api_key("k1")
    assert type(info.value) is NotFoundError


def test_pages_are_retried_one_by_one() -> None:
    api = ScriptedApi(
        page([audit_log()], cursor="c1"), error(500, "boom"), page([audit_log()]), page([])
    )
    client, _ = make_client(api)
    assert len(list(client.iter_audit_logs())) == 2
    assert [r.url.params.get("starting_after") for r in api.requests] == [None, "c1", "c1"]


# ---- refresh on 401 ---------------------------------------------------------------------------


def test_bad_key_401_refreshes_the_key_once_and_retries_once() -> None:
    provider = SwitchingKey("revoked-key-aaaaaa", "rotated-key-bbbbbb")
    api = ScriptedApi(error(401, "Invalid API key"), ok(workspace()))
    client, clock = make_client(api, key=provider)
    client.get_current_workspace()
    assert provider.refreshes == 1
    assert [r.headers["authorization"] for r in api.requests] == [
        "Bearer revoked-key-aaaaaa",
        "Bearer rotated-key-bbbbbb",
    ]
    assert clock.sleeps == []  # a refresh is not a backoff


def test_a_second_401_after_the_refresh_is_raised() -> None:
    provider = SwitchingKey("revoked-key-aaaaaa", "also-bad-key-bbbbbb", "never-used-cccccc")
    api = ScriptedApi(error(401, "Invalid API key"))
    client, _ = make_client(api, key=provider)
    with pytest.raises(AuthenticationError):
        client.get_current_workspace()
    assert provider.refreshes == 1
    assert api.count == 2


def test_a_refresh_that_gives_the_same_key_is_not_retried() -> None:
    api = ScriptedApi(error(401, "Invalid API key"))
    client, _ = make_client(api)  # StaticKey: refreshing changes nothing
    with pytest.raises(AuthenticationError):
        client.get_current_workspace()
    assert api.count == 1


def test_scope_401_does_not_refresh_the_key() -> None:
    provider = SwitchingKey("narrow-key-aaaaaa", "other-key-bbbbbb")
    api = ScriptedApi(error(401, SCOPE_401))
    client, _ = make_client(api, key=provider)
    with pytest.raises(ScopeError):
        list(client.list_api_keys())
    assert provider.refreshes == 0
    assert api.count == 1


def test_the_refresh_does_not_use_up_retries() -> None:
    provider = SwitchingKey("revoked-key-aaaaaa", "rotated-key-bbbbbb")
    api = ScriptedApi(error(401, "Invalid API key"), ok(workspace()))
    client, _ = make_client(api, key=provider, max_retries=0)
    client.get_current_workspace()
    assert api.count == 2


def test_a_create_is_repeated_with_the_refreshed_key() -> None:
    # A 401 is answered before anything is created, so the create can go again.
    provider = SwitchingKey("revoked-key-aaaaaa", "rotated-key-bbbbbb")
    api = ScriptedApi(error(401, "Invalid API key"), ok(api_key(key="brand-new-key-cccccc")))
    client, _ = make_client(api, key=provider)
    assert client.create_api_key("n", ["audit_logs:read"]).key.reveal() == "brand-new-key-cccccc"
    assert api.count == 2


def test_refresh_then_server_errors_still_get_their_retries() -> None:
    provider = SwitchingKey("revoked-key-aaaaaa", "rotated-key-bbbbbb")
    api = ScriptedApi(error(401, "Invalid API key"), error(500, "boom"), ok(workspace()))
    client, clock = make_client(api, key=provider, max_retries=1)
    client.get_current_workspace()
    assert api.count == 3
    assert clock.sleeps == [0.5]
    assert provider.refreshes == 1
