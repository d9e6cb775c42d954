"""The `/_sandbox/` control API, for out-of-process use."""

from __future__ import annotations

import httpx
import pytest

from instantly_sandbox import Sandbox
from instantly_sandbox.control import _is_loopback
from instantly_sandbox.seed import HOOK_NO_AUTH


@pytest.fixture
def control(sandbox: Sandbox):
    with httpx.Client(base_url=sandbox.control_url, timeout=5) as client:
        yield client


def test_health(sandbox: Sandbox, control) -> None:
    assert control.get("/health").json() == {"ok": True, "base_url": sandbox.base_url}


def test_add_key_returns_a_usable_key(sandbox: Sandbox, control, client_for) -> None:
    added = control.post("/keys", json={"name": "ops", "scopes": ["campaigns:read"]}).json()
    assert set(added) == {"id", "key", "scopes"}
    assert client_for(sandbox, added["key"]).get("/campaigns").status_code == 200


def test_seed_and_add_audit_logs(sandbox: Sandbox, control) -> None:
    before = len(sandbox.state.audit_logs)
    seeded = control.post(
        "/audit-logs/seed",
        json={"n": 50, "start": "2025-01-01T00:00:00Z", "activity_types": [29, 30]},
    ).json()
    assert seeded["count"] == 50
    assert sandbox.state.audit_logs.get(seeded["first_id"]).timestamp == "2025-01-01T00:00:00.000Z"
    one = control.post(
        "/audit-logs",
        json={"activity_type": 26, "timestamp": "2025-02-01T10:00:00Z", "user_name": "Bob"},
    ).json()
    assert sandbox.state.audit_logs.get(one["id"]).user_name == "Bob"
    assert len(sandbox.state.audit_logs) == before + 51


def test_listing_order_faults_rate_limit_and_paid_plan(sandbox: Sandbox, control, admin) -> None:
    assert control.put("/listing-order", json={"order": "desc"}).status_code == 200
    assert sandbox.state.audit_logs.order == "desc"
    assert control.put("/listing-order", json={"order": "sideways"}).status_code == 400

    pending = control.post("/faults", json={"operation": "GET /api-keys", "mode": "error_503"})
    assert pending.json()["pending"][0]["mode"] == "error_503"
    assert admin.get("/api-keys").status_code == 503
    control.post("/faults", json={"operation": "GET /api-keys"})
    assert control.delete("/faults").json() == {"pending": []}
    assert admin.get("/api-keys").status_code == 200

    control.put("/paid-plan", json={"active": False})
    assert admin.get("/api-keys").status_code == 402
    control.put("/paid-plan", json={"active": True})
    control.put("/rate-limit", json={"per_s": 1})
    admin.get("/api-keys")
    assert admin.get("/api-keys").status_code == 429
    control.put("/rate-limit", json={"per_s": None})


def test_webhook_disable_and_deliver(sandbox: Sandbox, control, admin, receiver) -> None:
    hook_id = admin.post(
        "/webhooks", json={"target_hook_url": receiver.url, "event_type": "lead_interested"}
    ).json()["id"]
    delivered = control.post(f"/webhooks/{hook_id}/deliver", json={"event_type": "lead_interested"})
    assert delivered.json() == {"status": 200}
    assert len(receiver.requests) == 1
    disabled = control.post(f"/webhooks/{hook_id}/disable").json()
    assert disabled["status"] == -1
    refused = control.post(f"/webhooks/{hook_id}/deliver", json={})
    assert refused.status_code == 502
    assert "disabled" in refused.json()["error"]
    assert control.post("/webhooks/nope/disable").status_code == 404


def test_deliver_to_an_unreachable_target_is_502(sandbox: Sandbox, control) -> None:
    hook_id = sandbox.state.webhook_named(HOOK_NO_AUTH).id
    sandbox.state.webhooks[hook_id].target_hook_url = "http://127.0.0.1:9/nothing"
    assert control.post(f"/webhooks/{hook_id}/deliver", json={}).status_code == 502


def test_reset_gives_a_fresh_workspace_and_keys(sandbox: Sandbox, control, client_for) -> None:
    old_admin = sandbox.keys["admin"].key
    keys = control.post("/reset", json={"seed": "empty"}).json()["keys"]
    assert list(keys) == ["admin"]
    assert keys["admin"]["key"] != old_admin
    assert client_for(sandbox, old_admin).get("/api-keys").status_code == 401
    assert client_for(sandbox, keys["admin"]["key"]).get("/webhooks").json() == {"items": []}


def test_unknown_endpoint_and_bad_body(control) -> None:
    assert control.get("/nothing").status_code == 404
    assert control.post("/keys", content=b"[1]").status_code == 400
    assert control.post("/keys", json={"name": "x"}).status_code == 400


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.4", False),
        ("192.168.1.1", False),
        ("junk", False),
    ],
)
def test_only_loopback_clients_may_use_the_control_api(address: str, expected: bool) -> None:
    assert _is_loopback(address) is expected


def test_date_filter_and_request_counts(sandbox: Sandbox, control, admin) -> None:
    body = {"utc_offset_s": -5 * 3600, "end_exclusive": True}
    assert control.put("/date-filter", json=body).json() == {
        "utc_offset_s": -18000.0,
        "end_exclusive": True,
    }
    store = sandbox.state.audit_logs
    assert store.date_filter_utc_offset.total_seconds() == -18000
    assert store.date_filter_end_exclusive is True
    before = control.get("/calls").json()["calls"].get("GET /audit-logs", 0)
    admin.get("/audit-logs")
    admin.get("/audit-logs")
    assert control.get("/calls").json()["calls"]["GET /audit-logs"] == before + 2


@pytest.mark.parametrize("path", ["/webhooks/event-types", "/webhook-events/summary"])
def test_operations_the_real_api_answers_501_answer_501_as_it_does(sandbox, client_for, path):
    """Documented, but answered 501 by the real service: the sandbox's 501 is the real one, not
    a gap of its own (its gaps name the sandbox)."""
    response = client_for(sandbox).get(path)
    assert response.status_code == 501
    assert "sandbox" not in response.json()["message"]
    gap = client_for(sandbox).get("/webhook-events/summary-by-date")
    assert gap.status_code == 501
    assert "sandbox" in gap.json()["message"]
