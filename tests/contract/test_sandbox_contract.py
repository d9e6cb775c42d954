"""The sandbox cannot drift from Instantly's OpenAPI document.

Every operation the client calls is exercised here, successes and error envelopes, and each
response is validated against the document's schema for that operation and status. (Every other
test that uses the `sandbox` / `sandbox_factory` fixtures gets the same check at teardown.)
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from tests.api_variants import ApiVariant, params

from instantly_sandbox import Sandbox
from instantly_sandbox.access import OPERATIONS
from instantly_sandbox.contract import OpenApiContract
from instantly_sandbox.delivery import DeliveryError
from instantly_sandbox.delivery_log import DeliveryLogOptions
from instantly_sandbox.recorder import RecordedResponse
from instantly_sandbox.routes import ROUTES
from instantly_sandbox.seed import HOOK_DISABLED, HOOK_GOOD
from instantly_sandbox.variants import DEVIATIONS

pytestmark = pytest.mark.contract

CLIENT_OPERATIONS = (
    "POST /api-keys",
    "GET /api-keys",
    "DELETE /api-keys/{id}",
    "GET /audit-logs",
    "GET /webhooks",
    "POST /webhooks",
    "GET /webhooks/{id}",
    "PATCH /webhooks/{id}",
    "DELETE /webhooks/{id}",
    "POST /webhooks/{id}/resume",
    "GET /webhook-events",
    "GET /webhook-events/{id}",
    "GET /workspace-members",
    "GET /block-lists-entries",
    "POST /block-lists-entries",
    "GET /workspaces/current",
    "GET /campaigns",
    "GET /accounts",
)
MISSING_UUID = "019ffad2-5c30-79ee-b624-f5375e5b650b"


def _exercise_successes(sb: Sandbox, client: httpx.Client, receiver_url: str) -> None:
    def ok(response: httpx.Response) -> dict:
        assert response.status_code == 200, (response.request.url, response.text)
        return response.json()

    created = ok(client.post("/api-keys", json={"name": "contract", "scopes": ["leads:read"]}))
    ok(client.get("/api-keys", params={"limit": 2}))
    ok(client.delete(f"/api-keys/{created['id']}"))
    sb.seed_audit_logs(150, activity_types=(1, 29, 34, 37))
    ok(client.get("/audit-logs", params={"limit": 120}))
    ok(client.get("/audit-logs", params={"activity_type": 29, "start_date": "2020-01-01"}))
    hook = ok(
        client.post(
            "/webhooks",
            json={
                "target_hook_url": receiver_url,
                "event_type": "email_link_clicked",
                "name": "contract",
                "headers": {"x-webhook-secret": "c" * 32},
                "campaign": None,
            },
        )
    )
    ok(client.get("/webhooks", params={"limit": 3}))
    ok(client.get(f"/webhooks/{hook['id']}"))
    ok(client.patch(f"/webhooks/{hook['id']}", json={"name": None, "custom_interest_value": 2}))
    sb.deliver_webhook_event(hook["id"], timeout=2.0)
    ok(client.get(f"/webhook-events/{ok(client.get('/webhook-events'))['items'][0]['id']}"))
    ok(client.post(f"/webhooks/{sb.state.webhook_named(HOOK_DISABLED).id}/resume"))
    ok(client.delete(f"/webhooks/{hook['id']}"))
    ok(client.get("/workspace-members", params={"limit": 100}))
    ok(client.get("/block-lists-entries"))
    ok(client.post("/block-lists-entries", json={"bl_value": "rival-two.example"}))
    ok(client.post("/block-lists-entries", json={"bl_value": "ceo@rival-two.example"}))
    ok(client.get("/workspaces/current"))
    ok(client.get("/campaigns", params={"limit": 1}))
    ok(client.get("/accounts", params={"limit": 1}))


def _exercise_errors(sb: Sandbox, client: httpx.Client) -> None:
    statuses = [
        client.post("/api-keys", json={"name": "x"}).status_code,  # 400 documented
        client.get("/api-keys", params={"limit": 0}).status_code,  # 400 not documented here
        client.get("/audit-logs", params={"limit": 5000}).status_code,
        client.post("/webhooks", json={"target_hook_url": "nope"}).status_code,
        client.delete(f"/api-keys/{MISSING_UUID}").status_code,  # 404
        client.get(f"/webhooks/{MISSING_UUID}").status_code,
        client.get("/campaigns", headers={"Authorization": "Bearer revoked"}).status_code,  # 401
        client.get("/no-such-route").status_code,  # Fastify 404
        client.post("/leads/list", json={}).status_code,  # 501
    ]
    assert statuses == [400, 400, 400, 400, 404, 404, 401, 404, 501]
    sb.faults.fail_next("GET /audit-logs", mode="error_500")
    sb.faults.fail_next("GET /api-keys", mode="error_503")
    sb.faults.fail_next("POST /api-keys", mode="error_429")
    sb.faults.fail_next("GET /workspaces/current", mode="error_502")
    assert client.get("/audit-logs").status_code == 500
    assert client.get("/api-keys").status_code == 503
    assert client.post("/api-keys", json={"name": "x", "scopes": []}).status_code == 429
    assert client.get("/workspaces/current").status_code == 502
    sb.set_paid_plan(False)
    assert client.get("/workspace-members").status_code == 402
    sb.set_paid_plan(True)
    scoped = sb.add_key("narrow", ["leads:read"])
    denied = client.get("/accounts", headers={"Authorization": f"Bearer {scoped.key}"})
    assert denied.status_code == 401


def _admin_client(sb: Sandbox) -> httpx.Client:
    return httpx.Client(
        base_url=sb.base_url,
        headers={"Authorization": f"Bearer {sb.keys['admin'].key}"},
        timeout=5,
    )


def test_every_client_operation_conforms(
    sandbox: Sandbox, openapi_contract: OpenApiContract, receiver_url: str
) -> None:
    with _admin_client(sandbox) as client:
        _exercise_successes(sandbox, client, receiver_url)
        _exercise_errors(sandbox, client)
    responses = list(sandbox.responses)
    succeeded = {r.operation for r in responses if r.status == 200}
    assert set(CLIENT_OPERATIONS) <= succeeded
    assert openapi_contract.check_all(responses) == []
    assert {r.status for r in responses} >= {200, 400, 401, 402, 404, 429, 500, 502, 503}


@pytest.fixture
def receiver_url(sandbox: Sandbox):
    """A target that answers 204 to every delivery."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/instantly"
    server.shutdown()
    server.server_close()
    thread.join()


DELIVERY_LOG_VARIANTS = [
    DeliveryLogOptions(),
    DeliveryLogOptions(order="desc", timestamps="offset", payload="detail_only"),
    DeliveryLogOptions(retries="in_place", retry_limit=2, success_filter="ignored"),
    DeliveryLogOptions(retries="separate", retry_limit=2, payload="absent"),
]


@pytest.mark.parametrize("options", DELIVERY_LOG_VARIANTS, ids=repr)
def test_every_delivery_log_variant_conforms(
    sandbox_factory, openapi_contract: OpenApiContract, receiver_url: str, options
) -> None:
    """Successes, failures, retries and disabled webhooks, as each variant shows them."""
    sb = sandbox_factory(seed="demo", delivery_log=options, webhook_failure_limit=3)
    hook = sb.state.webhook_named(HOOK_GOOD)
    with sb.state.lock:
        hook.target_hook_url = receiver_url
    sb.deliver_webhook_event(hook.id)
    with sb.state.lock:
        hook.target_hook_url = "http://127.0.0.1:9/down"  # nothing listens: failures
    with pytest.raises(DeliveryError):
        sb.deliver_webhook_event(hook.id, timeout=1.0)
    sb.retry_webhook_events()  # with retries on, these fail too
    while not sb.state.webhooks[hook.id].disabled:
        with pytest.raises(DeliveryError):
            sb.deliver_webhook_event(hook.id, timeout=1.0)
    assert sb.state.webhooks[hook.id].status == -1  # disabled after 3 failures (audit 20)
    with httpx.Client(
        base_url=sb.base_url,
        headers={"Authorization": f"Bearer {sb.keys['admin'].key}"},
        timeout=5,
    ) as client:
        for params in ({}, {"success": "false", "limit": 2}, {"search": receiver_url}):
            listed = client.get("/webhook-events", params=params)
            assert listed.status_code == 200
        items = client.get("/webhook-events", params={"limit": 100}).json()["items"]
        assert len(items) >= 3
        assert any(item["success"] for item in items)
        assert any(not item["success"] for item in items)
        for item in items:
            assert client.get(f"/webhook-events/{item['id']}").status_code == 200
        assert client.get(f"/webhook-events/{MISSING_UUID}").status_code == 404
        assert client.post(f"/webhooks/{hook.id}/resume").status_code == 200
    assert openapi_contract.check_all(list(sb.responses)) == []


def test_every_implemented_route_is_a_documented_operation(
    openapi_contract: OpenApiContract,
) -> None:
    implemented = {route.operation for route in ROUTES}
    assert implemented <= openapi_contract.operations()
    assert set(CLIENT_OPERATIONS) <= implemented


def test_scope_table_matches_the_document(openapi_contract: OpenApiContract) -> None:
    """The sandbox enforces exactly the scopes each operation's description lists (the union of
    its scope lines: a few descriptions carry two)."""
    pattern = re.compile(r"Requires one of the following scopes:([^\n]*)")
    for path, item in openapi_contract.document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            key = f"{method.upper()} {path.removeprefix('/api/v2')}"
            lines = pattern.findall(operation.get("description", ""))
            listed = [scope for line in lines for scope in re.findall(r"`([^`]+)`", line)]
            assert OPERATIONS[key] == tuple(dict.fromkeys(listed)), key


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (
            RecordedResponse("GET /workspaces/current", "GET", "/x", 200, {"id": "not-a-uuid"}),
            "is a required property",
        ),
        (
            RecordedResponse(
                "GET /api-keys", "GET", "/x", 200, {"items": [], "next_starting_after": 3}
            ),
            "is not of type 'string'",
        ),
        (
            RecordedResponse("GET /api-keys", "GET", "/x", 200, {"items": [], "extra": True}),
            "Additional properties are not allowed",
        ),
        (
            RecordedResponse("GET /api-keys", "GET", "/x", 201, {"items": []}),
            "status 201 is not documented",
        ),
        (
            RecordedResponse(
                "GET /api-keys",
                "GET",
                "/x",
                404,
                {"statusCode": 400, "error": "Not Found", "message": "x"},
            ),
            "is not one of [404]",
        ),
        (
            RecordedResponse(
                "GET /api-keys",
                "GET",
                "/x",
                503,
                {"statusCode": 503, "error": "Oops", "message": "x"},
            ),
            "'Service Unavailable' was expected",
        ),
        (
            RecordedResponse("GET /api-keys", "GET", "/x", 400, "<html>"),
            "non-JSON body",
        ),
        (
            RecordedResponse("GET /nothing", "GET", "/x", 200, {}),
            "operation not in the OpenAPI document",
        ),
    ],
)
def test_the_checker_catches_drift(
    openapi_contract: OpenApiContract, response: RecordedResponse, problem: str
) -> None:
    problems = openapi_contract.check(response)
    assert problems
    assert problem in " ".join(problems)


def test_format_checks_are_on(openapi_contract: OpenApiContract) -> None:
    body = {
        "id": "nope",
        "name": "k",
        "scopes": ["all:all"],
        "key": "abcd****",
        "organization_id": MISSING_UUID,
        "timestamp_created": "yesterday",
        "timestamp_updated": "2026-08-13T11:11:58.015Z",
    }
    problems = openapi_contract.check(RecordedResponse("POST /api-keys", "POST", "/x", 200, body))
    joined = " ".join(problems)
    assert "'nope' is not a 'uuid'" in joined
    assert "'yesterday' is not a 'date-time'" in joined


def test_large_list_bodies_are_recorded_as_a_sample(sandbox_factory) -> None:
    sb = sandbox_factory(seed="empty")
    sb.seed_audit_logs(1000)
    response = httpx.get(
        sb.base_url + "/audit-logs",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {sb.keys['admin'].key}"},
    )
    assert len(response.json()["items"]) == 1000
    (recorded,) = sb.responses.for_operation("GET /audit-logs")
    assert recorded.items_total == 1000
    assert recorded.sampled
    assert len(recorded.body["items"]) == 50


def test_every_started_sandbox_is_tracked_and_a_bad_answer_is_caught() -> None:
    from instantly_sandbox.testing import _TRACKER

    with Sandbox(seed="empty") as sb:  # started without the fixtures
        assert sb in _TRACKER.sandboxes
        sb.responses.record("GET /api-keys", "GET", "/api/v2/api-keys", 200, {"items": "no"})
        problems = _TRACKER.problems()
        assert problems
        assert "is not of type 'array'" in problems[0]
        assert _TRACKER.problems() == []  # each response is checked once
    assert _TRACKER.problems() == []
    assert sb not in _TRACKER.sandboxes  # stopped and fully checked: forgotten


def test_check_all_samples_long_runs_of_one_kind(openapi_contract: OpenApiContract) -> None:
    bad = RecordedResponse("GET /api-keys", "GET", "/x", 200, {"items": "no"})
    problems = openapi_contract.check_all([bad] * 1000)
    assert len(problems) == 200 + (1000 - 200) // 20


@pytest.mark.parametrize("variant", params())
def test_every_client_operation_conforms_under_each_variant(
    sandbox_factory, openapi_contract: OpenApiContract, receiver_url: str, variant: ApiVariant
) -> None:
    """Each variant's answers validate against the document, a deliberate break only where it is
    marked (and then with exactly that break allowed)."""
    sb = sandbox_factory(seed="demo", **variant.sandbox)
    with _admin_client(sb) as client:
        _exercise_successes(sb, client, receiver_url)
        narrow = sb.add_key("narrow", ["leads:read"])
        denied = client.get("/accounts", headers={"Authorization": f"Bearer {narrow.key}"})
        assert denied.status_code in (401, 403)
    responses = list(sb.responses)
    assert openapi_contract.check_all(responses) == []
    marked = {name for r in responses for name in r.deviations}
    expected = {f"{k}={v}" for k, v in variant.variants.items()} & set(DEVIATIONS)
    assert marked == expected
