"""`/api-keys`: the key string is shown once; creates and deletes are audited."""

from __future__ import annotations

import json

import httpx
import pytest

from instantly_sandbox import Sandbox


def _create(client: httpx.Client, name: str = "ci-export", scopes=("audit_logs:read",)) -> dict:
    response = client.post("/api-keys", json={"name": name, "scopes": list(scopes)})
    assert response.status_code == 200, response.text
    return response.json()


def test_key_string_appears_only_in_the_create_response(sandbox: Sandbox, admin) -> None:
    created = _create(admin)
    secret = created["key"]
    assert sandbox.state.key_for(secret) is not None

    listed = list(admin.get("/api-keys", params={"limit": 100}).json()["items"])
    mine = next(item for item in listed if item["id"] == created["id"])
    assert mine["key"] != secret
    assert mine["key"].startswith(secret[:4])
    assert set(mine["key"][4:]) == {"*"}

    deleted = admin.delete(f"/api-keys/{created['id']}").json()
    assert deleted["key"] == mine["key"]

    carrying = [r for r in sandbox.responses if secret in json.dumps(r.body)]
    assert [(r.operation, r.status) for r in carrying] == [("POST /api-keys", 200)]


def test_created_key_works_with_exactly_its_scopes(sandbox: Sandbox, admin, client_for) -> None:
    created = _create(admin, scopes=("audit_logs:read",))
    client = client_for(sandbox, created["key"])
    assert client.get("/audit-logs", params={"limit": 1}).status_code == 200
    assert client.get("/api-keys").status_code == 401


def test_create_and_delete_are_audited_with_the_calling_key(sandbox: Sandbox, admin) -> None:
    created = _create(admin, name="rotation/abc")
    admin.delete(f"/api-keys/{created['id']}")
    entries = sandbox.state.audit_logs.entries()[-2:]
    assert [entry.activity_type for entry in entries] == [37, 38]
    for entry in entries:
        assert entry.api_key_id == sandbox.keys["admin"].id
        assert entry.from_api is True
        assert entry.ip_address == "127.0.0.1"
        assert entry.user_agent == "sandbox-tests/1.0"
        assert entry.organization_id == sandbox.state.id
        assert entry.audit_metadata == {
            "id": created["id"],
            "name": "rotation/abc",
            "scopes": ["audit_logs:read"],
        }


def test_a_key_can_delete_itself_and_is_then_refused(sandbox: Sandbox, client_for) -> None:
    me = sandbox.keys["ops-key-manager"]
    client = client_for(sandbox, "ops-key-manager")
    assert client.delete(f"/api-keys/{me.id}").status_code == 200
    assert client.get("/api-keys").status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"scopes": ["leads:read"]}, "body must have required property 'name'"),
        ({"name": "x"}, "body must have required property 'scopes'"),
        (
            {"name": "x", "scopes": ["leads:fly"]},
            "body/scopes/0 must be equal to one of the allowed values",
        ),
        ({"name": "x", "scopes": "leads:read"}, "body/scopes must be array"),
        ({"name": 3, "scopes": []}, "body/name must be string"),
        ({"name": "x", "scopes": [], "ttl": 3}, "body must NOT have additional properties"),
        ([], "body must be object"),
    ],
)
def test_invalid_create_body_is_400(sandbox: Sandbox, admin, body: object, message: str) -> None:
    before = len(sandbox.state.api_keys)
    response = admin.post("/api-keys", json=body)
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "error": "Bad Request", "message": message}
    assert len(sandbox.state.api_keys) == before


def test_malformed_json_and_empty_json_body_are_400(sandbox: Sandbox, admin) -> None:
    bad = admin.post("/api-keys", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    empty = admin.delete(
        f"/api-keys/{sandbox.keys['legacy-zapier'].id}",
        headers={"content-type": "application/json"},
    )
    assert empty.status_code == 400
    assert "Body cannot be empty" in empty.json()["message"]


def test_delete_unknown_id_is_404_and_bad_id_is_400(admin) -> None:
    missing = admin.delete("/api-keys/019ffad2-5c30-79ee-b624-f5375e5b650b")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not Found"
    malformed = admin.delete("/api-keys/not-a-uuid")
    assert malformed.status_code == 400
    assert malformed.json()["message"] == 'params/id must match format "uuid"'


def test_ids_are_uuid7_and_timestamps_iso_with_milliseconds(admin) -> None:
    created = _create(admin)
    assert created["id"][14] == "7"
    stamp = created["timestamp_created"]
    assert len(stamp) == 24
    assert stamp.endswith("Z")
    assert stamp[19] == "."
