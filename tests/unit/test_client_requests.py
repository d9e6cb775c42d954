"""What the Instantly client puts on the wire: auth, headers, paths, queries, bodies, limits."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest
from tests.unit.instantly_fakes import (
    BASE_URL,
    KEY,
    ScriptedApi,
    SwitchingKey,
    api_key,
    audit_log,
    block_list_entry,
    make_client,
    ok,
    page,
    webhook,
    workspace,
)

from instantly_guard.errors import ConfigError
from instantly_guard.instantly import InstantlyClient, StaticKey
from instantly_guard.secret import Secret

ClientCall = Callable[[InstantlyClient], object]


def test_bearer_key_user_agent_and_accept_are_sent() -> None:
    api = ScriptedApi(page([]))
    client, _ = make_client(api)
    list(client.list_api_keys())
    request = api.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    agent = request.headers["user-agent"]
    assert agent.startswith("instantly-guard/")
    assert "httpx/" in agent
    assert "python-httpx" not in agent  # Instantly's edge blocks the default agent


def test_key_appears_in_no_url() -> None:
    api = ScriptedApi(page([]))
    client, _ = make_client(api)
    list(client.iter_audit_logs(search="x"))
    assert KEY not in str(api.requests[0].url)


def test_workspace_header_is_sent_only_when_set() -> None:
    api = ScriptedApi(ok(workspace()))
    plain, _ = make_client(api)
    plain.get_current_workspace()
    scoped, _ = make_client(api, workspace_id="sub-ws-1")
    scoped.get_current_workspace()
    assert "x-as-workspace" not in api.requests[0].headers
    assert api.requests[1].headers["x-as-workspace"] == "sub-ws-1"


def test_key_provider_is_asked_for_every_call() -> None:
    provider = SwitchingKey("first-key-aaaaaa", "second-key-bbbbbb")
    api = ScriptedApi(ok(workspace()))
    client, _ = make_client(api, key=provider)
    client.get_current_workspace()
    provider.index = 1  # the secret store moved on between two calls
    client.get_current_workspace()
    assert [r.headers["authorization"] for r in api.requests] == [
        "Bearer first-key-aaaaaa",
        "Bearer second-key-bbbbbb",
    ]


def test_create_api_key_posts_name_and_scopes() -> None:
    api = ScriptedApi(ok(api_key(key="new-key-value-123456")))
    client, _ = make_client(api)
    created = client.create_api_key("guard/audit/r1", ("audit_logs:read",))
    request = api.requests[0]
    assert (request.method, request.url.path) == ("POST", "/api/v2/api-keys")
    assert json.loads(request.content) == {"name": "guard/audit/r1", "scopes": ["audit_logs:read"]}
    assert created.key.reveal() == "new-key-value-123456"


def test_create_api_key_refuses_a_single_string_as_scopes() -> None:
    client, _ = make_client(ScriptedApi(ok({})))
    with pytest.raises(TypeError, match="sequence of scope strings"):
        client.create_api_key("name", "all:all")


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (lambda c: c.delete_api_key("k1"), "DELETE", "/api/v2/api-keys/k1"),
        (lambda c: c.delete_webhook("w1"), "DELETE", "/api/v2/webhooks/w1"),
        (lambda c: c.resume_webhook("w1"), "POST", "/api/v2/webhooks/w1/resume"),
        (lambda c: c.get_webhook("w1"), "GET", "/api/v2/webhooks/w1"),
    ],
)
def test_requests_without_a_body_send_no_content_type(
    call: ClientCall, method: str, path: str
) -> None:
    # Instantly's server rejects an empty body announced as application/json.
    body = api_key() if "api-keys" in path else webhook()
    api = ScriptedApi(ok(body))
    client, _ = make_client(api)
    call(client)
    request = api.requests[0]
    assert (request.method, request.url.path) == (method, path)
    assert "content-type" not in request.headers
    assert request.content == b""


def test_ids_are_percent_encoded_into_the_path() -> None:
    api = ScriptedApi(ok(webhook()))
    client, _ = make_client(api)
    client.get_webhook("../api-keys?x=1")
    assert api.requests[0].url.raw_path == b"/api/v2/webhooks/..%2Fapi-keys%3Fx%3D1"


def test_empty_id_is_refused() -> None:
    client, _ = make_client(ScriptedApi(ok({})))
    with pytest.raises(ValueError, match="non-empty"):
        client.delete_api_key("")


def test_audit_log_filters_become_query_parameters() -> None:
    api = ScriptedApi(page([]))
    client, _ = make_client(api)
    late_evening_in_new_york = datetime(2026, 3, 1, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    list(
        client.iter_audit_logs(
            start_date=date(2026, 2, 28),
            end_date=late_evening_in_new_york,  # 03:00 UTC on March 2nd
            activity_type=37,
            search="key",
            limit=500,
        )
    )
    assert dict(api.requests[0].url.params) == {
        "limit": "500",
        "start_date": "2026-02-28",
        "end_date": "2026-03-02",
        "activity_type": "37",
        "search": "key",
    }


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.list_api_keys(limit=0), "1 to 100"),
        (lambda c: c.list_webhooks(limit=101), "1 to 100"),
        (lambda c: c.list_workspace_members(limit=True), "1 to 100"),
        (lambda c: c.list_block_list_entries(limit=2.5), "1 to 100"),
        (lambda c: c.iter_audit_logs(limit=1001), "1 to 1000"),
        (lambda c: c.iter_audit_log_pages(limit=0), "1 to 1000"),
        (lambda c: c.probe(limit=101), "1 to 100"),
    ],
)
def test_limits_are_checked_before_any_request(call: ClientCall, match: str) -> None:
    api = ScriptedApi(page([]))
    client, _ = make_client(api)
    with pytest.raises(ValueError, match=match):
        call(client)  # raises on the call itself, not on first iteration
    assert api.count == 0


def test_listings_ask_for_the_largest_page_by_default() -> None:
    api = ScriptedApi(page([]))
    client, _ = make_client(api)
    list(client.list_webhooks())
    list(client.iter_audit_logs())
    assert [r.url.params["limit"] for r in api.requests] == ["100", "1000"]


@pytest.mark.parametrize(
    "base_url",
    ["http://api.instantly.ai/api/v2", "ftp://127.0.0.1/api/v2", "http://10.0.0.8:8080/api/v2"],
)
def test_plain_http_is_refused_except_on_loopback(base_url: str) -> None:
    with pytest.raises(ConfigError, match="https://"):
        InstantlyClient(StaticKey(KEY), base_url)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8123/api/v2", "http://localhost:1/api/v2", "http://[::1]:9/x"]
)
def test_plain_http_on_loopback_is_accepted(base_url: str) -> None:
    InstantlyClient(StaticKey(KEY), base_url).close()


def test_update_webhook_patches_only_the_given_fields_and_reveals_secret_headers() -> None:
    api = ScriptedApi(ok(webhook()))
    client, _ = make_client(api)
    client.update_webhook("w1", headers={"x-webhook-secret": Secret("rotated-secret-000111")})
    request = api.requests[0]
    assert (request.method, request.url.path) == ("PATCH", "/api/v2/webhooks/w1")
    assert json.loads(request.content) == {"headers": {"x-webhook-secret": "rotated-secret-000111"}}


@pytest.mark.parametrize("fields", [{}, {"status": 1}, {"nmae": "typo"}])
def test_update_webhook_refuses_unknown_or_no_fields(fields: dict[str, object]) -> None:
    client, _ = make_client(ScriptedApi(ok(webhook())))
    with pytest.raises(ValueError, match="update_webhook takes"):
        client.update_webhook("w1", **fields)


def test_create_webhook_sends_what_was_given() -> None:
    api = ScriptedApi(ok(webhook()))
    client, _ = make_client(api)
    client.create_webhook(
        target_hook_url="https://hooks.example.com/in",
        event_type="all_events",
        headers={"x-webhook-secret": "s3cret-s3cret-s3cret"},
    )
    assert json.loads(api.requests[0].content) == {
        "target_hook_url": "https://hooks.example.com/in",
        "event_type": "all_events",
        "headers": {"x-webhook-secret": "s3cret-s3cret-s3cret"},
    }


def test_create_block_list_entry_posts_the_value() -> None:
    api = ScriptedApi(ok(block_list_entry(bl_value="rival.example")))
    client, _ = make_client(api)
    entry = client.create_block_list_entry("rival.example")
    assert json.loads(api.requests[0].content) == {"bl_value": "rival.example"}
    assert entry.is_domain


def test_probe_reads_one_item_of_the_given_listing() -> None:
    api = ScriptedApi(page([]), page([]), ok(workspace()), ok(workspace()))
    client, _ = make_client(api)
    client.probe()
    client.probe("GET /audit-logs")
    client.probe("GET /workspaces/current")  # documented without `limit`
    client.probe("/api-keys", limit=None)
    assert [str(r.url) for r in api.requests] == [
        f"{BASE_URL}/campaigns?limit=1",
        f"{BASE_URL}/audit-logs?limit=1",
        f"{BASE_URL}/workspaces/current",
        f"{BASE_URL}/api-keys",
    ]


@pytest.mark.parametrize(
    "operation", ["campaigns", "GET /webhooks/{id}", "/campaigns?limit=5", "POST /api-keys"]
)
def test_probe_refuses_anything_but_a_plain_read(operation: str) -> None:
    client, _ = make_client(ScriptedApi(page([])))
    with pytest.raises(ValueError, match="plain GET"):
        client.probe(operation)


def test_each_attempt_is_logged_at_debug_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    api = ScriptedApi(page([audit_log()], cursor="c1"), page([]))
    client, _ = make_client(api)
    with caplog.at_level(logging.DEBUG, logger="instantly_guard.instantly"):
        list(client.iter_audit_logs(search="x"))
    records = [r for r in caplog.records if r.name == "instantly_guard.instantly"]
    assert [r.getMessage().split(" (")[0] for r in records] == [
        "GET /audit-logs -> 200",
        "GET /audit-logs -> 200",
    ]
    fields = records[0].__dict__["fields"]
    assert fields["method"] == "GET"
    assert fields["path"] == "/audit-logs"
    assert fields["status"] == 200
    assert fields["attempt"] == 1
    assert isinstance(fields["elapsed_ms"], float)
    assert all(KEY not in r.getMessage() and KEY not in str(r.__dict__) for r in caplog.records)


def test_context_manager_closes_the_http_client() -> None:
    api = ScriptedApi(ok(workspace()))
    client, _ = make_client(api)
    with client:
        client.get_current_workspace()
    with pytest.raises(RuntimeError):
        client.get_current_workspace()


def test_repr_shows_where_not_what() -> None:
    client, _ = make_client(ScriptedApi(ok({})), workspace_id="ws-1")
    assert repr(client) == f"InstantlyClient('{BASE_URL}', workspace_id='ws-1')"
    assert KEY not in repr(client)


def test_responses_parse_into_models() -> None:
    api = ScriptedApi(ok(workspace()), page([webhook(status=-1)]), page([]))
    client, _ = make_client(api)
    assert client.get_current_workspace().name == "My Workspace"
    hooks = list(client.list_webhooks())
    assert hooks[0].status == -1
    assert hooks[0].timestamp_created == datetime(2026, 8, 13, 11, 11, 58, 15000, tzinfo=UTC)


def test_transport_is_closed_by_client_close() -> None:
    closed: list[bool] = []

    class Transport(httpx.MockTransport):
        def close(self) -> None:
            closed.append(True)

    client = InstantlyClient(StaticKey(KEY), BASE_URL, transport=Transport(lambda r: ok({})))
    client.close()
    assert closed == [True]
