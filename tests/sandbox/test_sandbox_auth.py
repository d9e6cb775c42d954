"""Bearer keys and scope enforcement, answered the way the real API answers."""

from __future__ import annotations

import pytest

from instantly_sandbox import Sandbox


def test_missing_authorization_header_is_401(sandbox: Sandbox, client_for) -> None:
    response = client_for(sandbox, key=None).get("/api-keys")
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Missing Authorization header",
    }


@pytest.mark.parametrize("key", ["not-a-real-key", "Bearer"])
def test_unknown_key_is_401(sandbox: Sandbox, client_for, key: str) -> None:
    response = client_for(sandbox, key=key).get("/campaigns", params={"limit": 1})
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


def test_deleted_key_is_401_at_once(sandbox: Sandbox, client_for) -> None:
    legacy = sandbox.keys["legacy-zapier"]
    assert client_for(sandbox, "legacy-zapier").get("/campaigns").status_code == 200
    assert client_for(sandbox).delete(f"/api-keys/{legacy.id}").status_code == 200
    response = client_for(sandbox, "legacy-zapier").get("/campaigns")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid API key"


def test_missing_scope_answers_the_real_world_401_message(sandbox: Sandbox, client_for) -> None:
    key = sandbox.add_key("campaigns-and-leads", ["campaigns:all", "leads:all"])
    response = client_for(sandbox, key.key).get("/accounts", params={"limit": 1})
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Invalid scope. Required: accounts:read. Found: campaigns:all, leads:all",
    }


@pytest.mark.parametrize(
    "scopes", [["audit_logs:read"], ["audit_logs:all"], ["all:read"], ["all:all"]]
)
def test_an_operation_needing_r_a_accepts_the_four_forms(
    sandbox: Sandbox, client_for, scopes: list[str]
) -> None:
    key = sandbox.add_key("reader", scopes)
    assert client_for(sandbox, key.key).get("/audit-logs").status_code == 200


@pytest.mark.parametrize(
    "scopes", [["audit_logs:create"], ["audit_logs:update"], ["all:create"], ["logs:read"]]
)
def test_no_other_scope_inherits(sandbox: Sandbox, client_for, scopes: list[str]) -> None:
    key = sandbox.add_key("not-a-reader", scopes)
    response = client_for(sandbox, key.key).get("/audit-logs")
    assert response.status_code == 401
    assert response.json()["message"].startswith("Invalid scope. Required: audit_logs:read. Found:")


def test_operation_without_listed_scope_accepts_any_valid_key(sandbox: Sandbox, client_for) -> None:
    key = sandbox.add_key("leads-only", ["leads:read"])
    assert client_for(sandbox, key.key).get("/webhooks").status_code == 200


def test_documented_but_unimplemented_operation_is_still_scope_checked(
    sandbox: Sandbox, client_for
) -> None:
    key = sandbox.add_key("accounts-only", ["accounts:read"])
    denied = client_for(sandbox, key.key).post("/leads/list", json={})
    assert denied.status_code == 401
    assert "Required: leads:read" in denied.json()["message"]
    allowed = client_for(sandbox).post("/leads/list", json={})
    assert allowed.status_code == 501


def test_unknown_route_is_fastify_404(sandbox: Sandbox, client_for) -> None:
    response = client_for(sandbox).get("/no-such-thing")
    assert response.status_code == 404
    assert response.json()["message"] == "Route GET:/api/v2/no-such-thing not found"


def test_static_route_wins_over_parametric_one(sandbox: Sandbox, client_for) -> None:
    # /webhooks/event-types is documented; it must not be read as /webhooks/{id}.
    response = client_for(sandbox).get("/webhooks/event-types")
    assert response.status_code == 501


def test_x_as_workspace_for_own_workspace_passes_and_other_is_403(
    sandbox: Sandbox, client_for
) -> None:
    client = client_for(sandbox)
    own = client.get("/workspaces/current", headers={"x-as-workspace": sandbox.state.id})
    assert own.status_code == 200
    other = client.get(
        "/workspaces/current", headers={"x-as-workspace": "019ffad2-5cac-7fb9-a336-43df778ad26c"}
    )
    assert other.status_code == 403


def test_no_paid_plan_is_402_for_every_call(sandbox: Sandbox, client_for) -> None:
    sandbox.set_paid_plan(False)
    response = client_for(sandbox).get("/audit-logs")
    assert response.status_code == 402
    assert response.json()["error"] == "Payment Required"
    sandbox.set_paid_plan(True)
    assert client_for(sandbox).get("/audit-logs").status_code == 200


def test_every_response_carries_a_request_id(sandbox: Sandbox, client_for) -> None:
    ok = client_for(sandbox).get("/workspaces/current")
    denied = client_for(sandbox, key=None).get("/workspaces/current")
    assert ok.headers["x-request-id"] != denied.headers["x-request-id"]
