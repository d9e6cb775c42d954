"""The Instantly client against the sandbox over real HTTP: retries, 429s, pagination, scope
errors, refresh-on-401, timeouts, lost responses, and a log capture that never sees a key."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from instantly_guard.errors import (
    AlreadyDeletedError,
    AuthenticationError,
    InstantlyError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitedError,
    ScopeError,
    ServerError,
    TransportError,
)
from instantly_guard.instantly import (
    CachedKey,
    InstantlyClient,
    KeyProvider,
    RateLimiter,
    RetryPolicy,
    StaticKey,
)
from instantly_guard.logs import configure_logging
from instantly_guard.secret import Secret
from instantly_sandbox import Sandbox

Connect = Callable[..., InstantlyClient]


class Sleeps(list[float]):
    """Records every backoff; sleeps for real only when told to (server-side windows are real)."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.real:
            time.sleep(seconds)


class SwitchingKey:
    """First the given stale key; every refresh moves on to the next one."""

    def __init__(self, *keys: str) -> None:
        self.keys = [Secret(k) for k in keys]
        self.refreshes = 0

    def __call__(self, *, refresh: bool = False) -> Secret:
        if refresh:
            self.refreshes += 1
        return self.keys[min(self.refreshes, len(self.keys) - 1)]


def _no_wait(seconds: float) -> None:
    pass


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def connect(sandbox: Sandbox, sleeps: Sleeps) -> Iterator[Connect]:
    """Clients on `sandbox`: admin key by default, a limiter of their own (so tests do not share
    budget), backoff recorded in `sleeps` (not slept) with jitter pinned to its ceiling."""
    made: list[InstantlyClient] = []

    def make(
        key: str | KeyProvider | None = None, sb: Sandbox | None = None, **kwargs: Any
    ) -> InstantlyClient:
        sb = sb or sandbox
        provider = key if callable(key) else StaticKey(key or sb.keys["admin"].key)
        # The limiter's own waits (after a 429 it holds back the process) are skipped too.
        kwargs.setdefault("rate_limiter", RateLimiter(1000, 60_000, sleep=_no_wait))
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("retry_policy", RetryPolicy(random=lambda: 1.0))
        client = InstantlyClient(provider, sb.base_url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# ---- retries and backoff ---------------------------------------------------------------------


def test_server_errors_are_retried_with_backoff(
    sandbox: Sandbox, connect: Connect, sleeps: Sleeps
) -> None:
    client = connect()
    sandbox.faults.fail_next("GET /audit-logs", times=2, mode="error_500")
    before = sandbox.calls["GET /audit-logs"]
    entries = list(client.iter_audit_logs())
    assert entries
    assert sandbox.calls["GET /audit-logs"] - before == 3  # two failures, then the one page
    assert sleeps == [0.5, 1.0]


def test_an_html_502_from_the_edge_is_retried(
    sandbox: Sandbox, connect: Connect, sleeps: Sleeps
) -> None:
    sandbox.faults.fail_next("GET /workspaces/current", mode="error_502")
    assert connect().get_current_workspace().name
    assert sleeps == [0.5]


def test_retries_give_up_after_max_retries(sandbox: Sandbox, connect: Connect) -> None:
    sandbox.faults.fail_next("GET /webhooks", times=10, mode="error_503")
    with pytest.raises(ServerError) as info:
        list(connect(max_retries=2).list_webhooks())
    assert info.value.status == 503
    assert sandbox.calls["GET /webhooks"] == 3


def test_a_create_is_not_repeated_after_a_server_error(sandbox: Sandbox, connect: Connect) -> None:
    sandbox.faults.fail_next("POST /api-keys", mode="error_500", commit=True)
    with pytest.raises(ServerError, match="the key may have been created"):
        connect().create_api_key("guard/test/r1", ["audit_logs:read"])
    assert sandbox.calls["POST /api-keys"] == 1
    # What the rotation does next: look the key up by name.
    assert [k.name for k in connect().list_api_keys()].count("guard/test/r1") == 1


# ---- 429 ------------------------------------------------------------------------------------


def test_429_from_the_server_is_waited_out(sandbox_factory: Callable[..., Sandbox]) -> None:
    sb = sandbox_factory(seed="empty", rate_limit_per_s=5, retry_after_s=0.3)
    sleeps = Sleeps(real=True)
    client = InstantlyClient(
        StaticKey(sb.keys["admin"].key),
        sb.base_url,
        rate_limiter=RateLimiter(1000, 60_000),  # far above the server's 5/s, to provoke 429s
        sleep=sleeps,
    )
    with client:
        for _ in range(8):
            client.get_current_workspace()
    assert 0.3 in sleeps  # the server's Retry-After was honoured
    assert sb.calls["GET /workspaces/current"] > 8


def test_429_without_retry_after_backs_off_and_succeeds(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(seed="empty")
    sb.faults.fail_next("GET /api-keys", times=2, mode="error_429")
    sleeps = Sleeps()
    client = InstantlyClient(
        StaticKey(sb.keys["admin"].key),
        sb.base_url,
        rate_limiter=RateLimiter(1000, 60_000, sleep=_no_wait),
        sleep=sleeps,
        retry_policy=RetryPolicy(random=lambda: 0.1),
    )
    with client:
        assert [k.name for k in client.list_api_keys()] == ["admin"]
    assert sleeps == [1.0, 1.0]  # Instantly sends no Retry-After: at least a second each


def test_429_that_outlasts_the_retries_is_raised(sandbox: Sandbox, connect: Connect) -> None:
    sandbox.faults.fail_next("GET /api-keys", times=5, mode="error_429")
    with pytest.raises(RateLimitedError) as info:
        list(connect(max_retries=1).list_api_keys())
    assert info.value.status == 429
    assert info.value.retryable


def test_the_client_limiter_keeps_under_the_server_limit(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(seed="empty", rate_limit_per_s=20)
    # A token bucket lets a burst of `per_second` through on top of the rate, so 8/s gives at
    # most 16 requests in any second: under the server's 20.
    client = InstantlyClient(
        StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(8, 60_000)
    )
    with client:
        for _ in range(14):
            client.get_current_workspace()
    assert sb.calls["GET /workspaces/current"] == 14  # not one 429


# ---- pagination -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
def test_thousands_of_audit_entries_arrive_exactly_once(
    sandbox_factory: Callable[..., Sandbox], order: str
) -> None:
    sb = sandbox_factory(seed="empty", listing_order=order, record_responses=False)
    ids = sb.seed_audit_logs(2500, activity_types=(1, 37, 38))
    client = InstantlyClient(
        StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60_000)
    )
    with client:
        pages = list(client.iter_audit_log_pages(limit=1000))
    got = [entry.id for page in pages for entry in page]
    assert [len(page) for page in pages] == [1000, 1000, 500]
    assert len(got) == len(set(got)) == 2500
    assert set(got) == set(ids)
    if order == "asc":
        assert got == ids
    elif order == "desc":
        assert got == ids[::-1]


def test_small_pages_of_keys_are_followed(sandbox: Sandbox, connect: Connect) -> None:
    expected = {k.id for k in sandbox.state.api_keys.values()}
    got = [k.id for k in connect().list_api_keys(limit=2)]
    assert len(got) == len(expected)
    assert set(got) == expected
    assert sandbox.calls["GET /api-keys"] >= 3


def test_audit_filters_are_applied_by_the_server(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(seed="empty")
    sb.seed_audit_logs(30, activity_types=(1, 37, 38))
    client = InstantlyClient(
        StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60_000)
    )
    with client:
        created = list(client.iter_audit_logs(activity_type=37, limit=4))
    assert len(created) == 10
    assert {e.activity_type for e in created} == {37}


# ---- scopes, plans, workspaces --------------------------------------------------------------


def test_a_missing_scope_is_parsed(sandbox: Sandbox, connect: Connect) -> None:
    narrow = sandbox.add_key("narrow", ["campaigns:read"])
    client = connect(narrow.key)
    client.probe("GET /campaigns")
    with pytest.raises(ScopeError) as info:
        list(client.list_api_keys())
    assert info.value.status == 401
    assert info.value.required == ("api_keys:read",)
    assert info.value.found == ("campaigns:read",)
    assert narrow.key not in str(info.value)


def test_a_scope_error_does_not_refresh_the_key(sandbox: Sandbox, connect: Connect) -> None:
    narrow = sandbox.add_key("narrow", ["campaigns:read"])
    provider = SwitchingKey(narrow.key, sandbox.keys["admin"].key)
    with pytest.raises(ScopeError):
        connect(provider).create_api_key("x", ["campaigns:read"])
    assert provider.refreshes == 0


def test_no_paid_plan_is_payment_required(sandbox: Sandbox, connect: Connect) -> None:
    sandbox.set_paid_plan(False)
    with pytest.raises(PaymentRequiredError):
        connect().get_current_workspace()


def test_x_as_workspace_is_sent(sandbox: Sandbox, connect: Connect) -> None:
    own = connect(workspace_id=sandbox.state.id).get_current_workspace()
    assert own.id == sandbox.state.id
    with pytest.raises(PermissionDeniedError):
        connect(workspace_id="019a0000-0000-7000-8000-000000000000").get_current_workspace()


# ---- refresh on 401 -------------------------------------------------------------------------


def test_a_revoked_key_is_replaced_by_one_refresh(sandbox: Sandbox, connect: Connect) -> None:
    admin = connect()
    old = admin.create_api_key("guard/rotating/r1", ["workspaces:read"])
    new = admin.create_api_key("guard/rotating/r2", ["workspaces:read"])
    admin.delete_api_key(old.id)  # rotated and revoked while a consumer still holds it
    provider = SwitchingKey(old.key.reveal(), new.key.reveal())
    consumer = connect(provider)
    assert consumer.get_current_workspace().id == sandbox.state.id
    assert provider.refreshes == 1
    assert consumer.get_current_workspace().id == sandbox.state.id
    assert provider.refreshes == 1  # the refreshed key stays in use


def test_a_cached_secret_store_key_follows_a_rotation(sandbox: Sandbox, connect: Connect) -> None:
    admin = connect()
    store = {"current": admin.create_api_key("guard/c/r1", ["workspaces:read"]).key}
    reads: list[int] = []

    def read_store() -> Secret:
        reads.append(1)
        return store["current"]

    consumer = connect(CachedKey(read_store, ttl=3600))
    consumer.get_current_workspace()
    old_id = next(k.id for k in admin.list_api_keys() if k.name == "guard/c/r1")
    store["current"] = admin.create_api_key("guard/c/r2", ["workspaces:read"]).key
    admin.delete_api_key(old_id)
    consumer.get_current_workspace()  # 401 with the cached key, refresh, success
    assert len(reads) == 2


def test_two_bad_keys_raise_authentication_error(sandbox: Sandbox, connect: Connect) -> None:
    provider = SwitchingKey("not-a-key-0000000001", "not-a-key-0000000002")
    with pytest.raises(AuthenticationError) as info:
        connect(provider).get_current_workspace()
    assert provider.refreshes == 1
    assert info.value.status == 401
    assert sandbox.calls["GET /workspaces/current"] == 2


# ---- timeouts and lost answers ----------------------------------------------------------------


def test_a_read_that_times_out_is_retried(
    sandbox: Sandbox, connect: Connect, sleeps: Sleeps
) -> None:
    sandbox.faults.fail_next("GET /webhooks", mode="timeout", hold_s=2.0)
    started = time.monotonic()
    hooks = list(connect(timeout=0.3).list_webhooks())
    assert hooks
    assert time.monotonic() - started < 1.5  # gave up on the held request after 0.3 s
    assert sleeps == [0.5]


def test_a_create_that_times_out_says_the_key_may_exist(sandbox: Sandbox, connect: Connect) -> None:
    sandbox.faults.fail_next("POST /api-keys", mode="timeout", hold_s=2.0, commit=True)
    with pytest.raises(TransportError, match="the key may have been created") as info:
        connect(timeout=0.3).create_api_key("guard/timeout/r1", ["audit_logs:read"])
    assert info.value.status is None
    assert sandbox.calls["POST /api-keys"] == 1
    assert any(k.name == "guard/timeout/r1" for k in connect().list_api_keys())


def test_a_lost_create_response_is_not_repeated(sandbox: Sandbox, connect: Connect) -> None:
    sandbox.faults.fail_next("POST /api-keys", mode="lost_response")
    with pytest.raises(TransportError, match="list keys by name"):
        connect().create_api_key("guard/lost/r1", ["audit_logs:read"])
    assert sandbox.calls["POST /api-keys"] == 1
    named = [k for k in connect().list_api_keys() if k.name == "guard/lost/r1"]
    assert len(named) == 1  # created once, orphaned until the caller claims or deletes it


def test_a_lost_delete_response_ends_as_already_deleted(sandbox: Sandbox, connect: Connect) -> None:
    client = connect()
    key = client.create_api_key("guard/delete/r1", ["audit_logs:read"])
    sandbox.faults.fail_next("DELETE /api-keys/{id}", mode="lost_response")
    with pytest.raises(AlreadyDeletedError):
        client.delete_api_key(key.id)
    assert all(k.id != key.id for k in client.list_api_keys())
    with pytest.raises(NotFoundError) as info:
        client.delete_api_key(key.id)
    assert type(info.value) is NotFoundError


def test_an_unreachable_server_is_a_transport_error(sandbox: Sandbox, connect: Connect) -> None:
    client = connect(max_retries=1)
    sandbox.stop()
    with pytest.raises(TransportError, match="could not connect"):
        client.get_current_workspace()


# ---- every typed method, once --------------------------------------------------------------


def test_every_typed_method_works_against_the_sandbox(sandbox: Sandbox, connect: Connect) -> None:
    client = connect()
    client.probe()
    client.probe("GET /workspaces/current")
    assert client.get_current_workspace().id == sandbox.state.id
    assert {m.role for m in client.list_workspace_members()} >= {"owner", "admin"}
    before = {e.bl_value for e in client.list_block_list_entries()}
    entry = client.create_block_list_entry("rival-two.example")
    assert entry.is_domain
    assert {e.bl_value for e in client.list_block_list_entries()} == before | {"rival-two.example"}
    hook = client.create_webhook(
        target_hook_url="https://hooks.acme.example/new",
        event_type="reply_received",
        name="new-hook",
        headers={"x-webhook-secret": Secret("a-webhook-secret-of-32-bytes-0001")},
    )
    assert client.get_webhook(hook.id).headers == {
        "x-webhook-secret": "a-webhook-secret-of-32-bytes-0001"
    }
    assert client.update_webhook(hook.id, name="renamed").name == "renamed"
    disabled = sandbox.disable_webhook(hook.id)
    assert disabled.status == -1
    assert client.resume_webhook(hook.id).status == 1
    assert client.delete_webhook(hook.id).id == hook.id
    assert hook.id not in {h.id for h in client.list_webhooks()}


# ---- logs -----------------------------------------------------------------------------------


class _RawCapture(logging.Handler):
    """Everything a record carries, unredacted: message, args, extras and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.chunks: list[str] = []
        self.names: set[str] = set()
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("instantly_sandbox"):
            return  # the server side is not the client's to answer for
        self.names.add(record.name.split(".")[0])
        text = [record.getMessage(), repr(record.args), repr(vars(record))]
        if record.exc_info:
            text.append(self._formatter.formatException(record.exc_info))
        self.chunks.append("\n".join(text))


def test_no_key_ever_reaches_a_log_record(sandbox: Sandbox, connect: Connect) -> None:
    root = logging.getLogger()
    old_level = root.level
    stream = io.StringIO()
    raw = _RawCapture()
    configure_logging("DEBUG", stream=stream)  # the production JSON path, redaction and all
    # configure_logging holds httpx/httpcore at WARNING; this test wants their every record.
    quiet = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(raw)  # and a handler that redacts nothing: the key must not be there at all
    log = logging.getLogger("tests.client")
    keys: list[str] = [sandbox.keys["admin"].key]
    try:
        admin = connect()
        narrow = sandbox.add_key("narrow", ["campaigns:read"])
        keys.append(narrow.key)
        created = admin.create_api_key("guard/logs/r1", ["workspaces:read"])
        keys.append(created.key.reveal())
        log.info("created %r: %s", created, created)  # what a careless caller might log
        list(admin.iter_audit_logs())
        sandbox.faults.fail_next("GET /api-keys", times=2, mode="error_500")
        list(admin.list_api_keys())
        sandbox.faults.fail_next("GET /webhooks", mode="timeout", hold_s=1.0)
        list(connect(timeout=0.2).list_webhooks())
        sandbox.faults.fail_next("POST /api-keys", mode="lost_response")
        provider = SwitchingKey("stale-key-not-valid-000", created.key.reveal())
        keys.append("stale-key-not-valid-000")
        failing: list[Callable[[], object]] = [
            lambda: admin.create_api_key("guard/logs/r2", ["audit_logs:read"]),
            lambda: list(connect(narrow.key).list_api_keys()),
            lambda: connect("bogus-key-value-123456").get_current_workspace(),
        ]
        for call in failing:
            try:
                call()
            except InstantlyError:
                log.exception("call failed")
        connect(provider).get_current_workspace()  # refresh-on-401
        keys.extend(record.key for record in sandbox.state.api_keys.values())  # r2 included
    finally:
        root.removeHandler(raw)
        configure_logging(logging.getLevelName(old_level), stream=io.StringIO())
        for handler in list(root.handlers):
            if getattr(handler, "_instantly_guard", False):
                root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)

    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    loggers = {line["logger"].split(".")[0] for line in lines}
    assert {"instantly_guard", "httpx", "httpcore", "tests"} <= loggers  # all were captured
    assert {"instantly_guard", "httpx", "httpcore"} <= raw.names
    assert any(line.get("status") == 500 for line in lines)  # per-attempt debug fields
    everything = output + "\n".join(raw.chunks)
    for key in keys:
        assert key not in everything
    assert "Bearer " not in "\n".join(raw.chunks)
