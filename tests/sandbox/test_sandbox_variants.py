"""The sandbox's plausible-behaviour variants: each answers as described, is selectable by the
constructor and the control API, and every answer still passes the contract check, with the
deliberate breaks of the document (and only those) marked as such."""

from __future__ import annotations

import httpx
import pytest

from instantly_sandbox import Sandbox
from instantly_sandbox.contract import OpenApiContract
from instantly_sandbox.recorder import RecordedResponse
from instantly_sandbox.state import mask_key
from instantly_sandbox.variants import UNPARSEABLE_TIMESTAMP, Variants, choices, malformation


def _listed(sb: Sandbox, client_for) -> dict:  # type: ignore[no-untyped-def]
    client = client_for(sb)
    items = client.get("/api-keys", params={"limit": 100}).json()["items"]
    return next(item for item in items if item["id"] == sb.keys["admin"].id)


@pytest.mark.parametrize("form", ["masked", "full", "absent", "null"])
def test_the_key_in_a_listing_takes_each_form(sandbox_factory, client_for, form: str) -> None:
    sb = sandbox_factory(seed="empty", variants={"listed_key": form})
    item = _listed(sb, client_for)
    real = sb.keys["admin"].key
    expected = {"masked": mask_key(real), "full": real, "null": None}
    if form == "absent":
        assert "key" not in item
    else:
        assert item["key"] == expected[form]
    (recorded,) = sb.responses.for_operation("GET /api-keys")
    breaks = form in ("absent", "null")
    assert recorded.deviations == ((f"listed_key={form}",) if breaks else ())


@pytest.mark.parametrize("form", ["full", "absent"])
def test_a_deleted_keys_answer_takes_the_form_too(sandbox_factory, client_for, form: str) -> None:
    sb = sandbox_factory(seed="empty", variants={"listed_key": form})
    doomed = sb.add_key("doomed", ["leads:read"])
    body = client_for(sb).delete(f"/api-keys/{doomed.id}").json()
    assert body.get("key") == (doomed.key if form == "full" else None)
    created = client_for(sb).post("/api-keys", json={"name": "n", "scopes": ["leads:read"]})
    assert created.json()["key"]  # the create answer always shows the key


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ("found", 401, "Invalid scope. Required: accounts:read. Found: leads:read"),
        ("required_only", 401, "Invalid scope. Required: accounts:read"),
        ("forbidden_403", 403, "Insufficient scope. Required: accounts:read"),
        ("unnamed", 401, "Invalid scope"),
    ],
)
def test_a_missing_scope_is_answered_in_each_form(
    sandbox_factory, client_for, form: str, status: int, message: str
) -> None:
    sb = sandbox_factory(seed="empty", variants={"scope_error": form})
    narrow = sb.add_key("narrow", ["leads:read"])
    response = client_for(sb, narrow.key).get("/accounts")
    assert response.status_code == status
    assert response.json()["message"] == message


def test_audit_fields_null_user_and_null_system(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="empty", variants={"audit_fields": "null_user"})
    sb.seed_audit_logs(5, user_id="u-1", user_name="Ann", ip_address="10.0.0.1", from_api=True)
    items = client_for(sb).get("/audit-logs").json()["items"]
    assert {(i["user_id"], i["user_name"], i["ip_address"]) for i in items} == {
        (None, None, "10.0.0.1")
    }
    assert sb.responses.for_operation("GET /audit-logs")[0].deviations == ()  # allowed
    sb.set_variants(audit_fields="null_system")
    items = client_for(sb).get("/audit-logs").json()["items"]
    assert {(i["ip_address"], i["from_api"]) for i in items} == {(None, None)}
    assert sb.responses.for_operation("GET /audit-logs")[-1].deviations == (
        "audit_fields=null_system",
    )


def test_malformed_audit_entries_are_a_stable_quarter(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="empty", variants={"audit_fields": "malformed"})
    ids = sb.seed_audit_logs(200)
    items = client_for(sb).get("/audit-logs", params={"limit": 1000}).json()["items"]
    kinds = {i: malformation(i) for i in ids}
    assert 20 < sum(1 for k in kinds.values() if k) < 80
    by_id = {item["id"]: item for item in items if "id" in item}
    for entry_id, kind in kinds.items():
        if kind == "id":
            assert entry_id not in by_id
        elif kind == "timestamp":
            assert by_id[entry_id]["timestamp"] == UNPARSEABLE_TIMESTAMP
        else:
            assert by_id[entry_id]["timestamp"].endswith("Z")
    assert len(items) == 200


def test_variants_over_the_control_api(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.control_url, timeout=5) as control:
        listed = control.get("/variants").json()
        assert listed["variants"] == Variants().to_json()
        assert listed["choices"] == {k: list(v) for k, v in choices().items()}
        changed = control.put("/variants", json={"listed_key": "absent", "scope_error": "unnamed"})
        assert changed.json()["variants"]["listed_key"] == "absent"
        assert sandbox.variants.scope_error == "unnamed"
        refused = control.put("/variants", json={"listed_key": "sometimes"})
        assert refused.status_code == 400
        assert "listed_key must be one of" in refused.json()["error"]
        assert control.put("/variants", json={"colour": "red"}).status_code == 400
    sandbox.reset()
    assert sandbox.variants.listed_key == "absent"  # survives a reset


def test_a_marked_deviation_is_allowed_and_only_that(openapi_contract: OpenApiContract) -> None:
    item = {
        "id": "019ffad2-5c30-79ee-b624-f5375e5b650b",
        "name": "k",
        "scopes": ["all:all"],
        "organization_id": "019ffad2-5c3e-7d8a-963d-6ecaf1ba9999",
        "timestamp_created": "2026-08-13T11:11:58.015Z",
        "timestamp_updated": "2026-08-13T11:11:58.015Z",
    }
    body = {"items": [item]}
    unmarked = RecordedResponse("GET /api-keys", "GET", "/x", 200, body)
    assert "'key' is a required property" in " ".join(openapi_contract.check(unmarked))
    marked = RecordedResponse(
        "GET /api-keys", "GET", "/x", 200, body, deviations=("listed_key=absent",)
    )
    assert openapi_contract.check(marked) == []
    other_drift = {"items": [{**item, "id": "nope"}]}
    still = RecordedResponse(
        "GET /api-keys", "GET", "/x", 200, other_drift, deviations=("listed_key=absent",)
    )
    assert "'nope' is not a 'uuid'" in " ".join(openapi_contract.check(still))
    bogus = RecordedResponse("GET /api-keys", "GET", "/x", 200, body, deviations=("whatever",))
    assert "unknown deviations" in " ".join(openapi_contract.check(bogus))


@pytest.mark.parametrize(
    ("form", "status"), [("lenient", 200), ("error_500", 500), ("error_400", 400)]
)
def test_a_cursor_never_issued_gets_each_answer(sandbox_factory, client_for, form, status) -> None:
    sb = sandbox_factory(seed="demo", variants={"unknown_cursor": form})
    client = client_for(sb)
    first = client.get("/api-keys", params={"limit": 2}).json()
    issued = first["next_starting_after"]
    assert client.get("/api-keys", params={"limit": 2, "starting_after": issued}).status_code == 200

    made_up = client.get("/api-keys", params={"limit": 2, "starting_after": "zz-not-a-cursor"})
    assert made_up.status_code == status
    if form == "lenient":
        assert made_up.json()["items"] == []  # reads as "caught up": why the others exist

    sb.forget_cursors()
    stale = client.get("/api-keys", params={"limit": 2, "starting_after": issued})
    assert stale.status_code == status


def test_real_shaped_keys_have_uuid4_ids_and_the_real_key_format(sandbox_factory, client_for):
    import uuid

    from instantly_guard.check.instantly_key import is_instantly_key

    sb = sandbox_factory(seed="empty", variants={"key_shape": "real"})
    created = client_for(sb).post("/api-keys", json={"name": "n", "scopes": ["leads:read"]})
    body = created.json()
    assert uuid.UUID(body["id"]).version == 4
    assert len(body["key"]) == 68
    assert is_instantly_key(body["key"])
    added = sb.add_key("by-hand", ["leads:read"])
    assert uuid.UUID(added.id).version == 4
    assert is_instantly_key(added.key)
    # The key works, and lists masked as any other.
    listed = client_for(sb).get("/api-keys", params={"limit": 100}).json()["items"]
    assert any(item["id"] == body["id"] for item in listed)
