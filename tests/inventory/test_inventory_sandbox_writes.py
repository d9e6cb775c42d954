"""The sandbox's member and block-list writes behave as the OpenAPI document describes them
(every response here is also validated against the document at teardown)."""

from __future__ import annotations

from instantly_sandbox import Sandbox

from .inventory_support import Person

MISSING = "019ffad2-5c30-79ee-b624-f5375e5b650b"


def test_member_invite_get_update_and_remove(sandbox: Sandbox) -> None:
    with Person(sandbox) as person:
        invited = person.call(
            "POST",
            "/workspace-members",
            json={"email": "new@acme.example", "role": "editor", "permissions": ["unibox.all"]},
        )
        assert invited["accepted"] is False
        assert invited["permissions"] == ["unibox.all"]
        assert person.call("GET", f"/workspace-members/{invited['id']}")["email"] == (
            "new@acme.example"
        )
        updated = person.call(
            "PATCH", f"/workspace-members/{invited['id']}", json={"role": "admin", "nickname": "N"}
        )
        assert (updated["role"], updated["nickname"]) == ("admin", "N")
        removed = person.call("DELETE", f"/workspace-members/{invited['id']}")
        assert removed["id"] == invited["id"]
        assert person.client.get(f"/workspace-members/{invited['id']}").status_code == 404


def test_member_writes_refuse_what_the_document_refuses(sandbox: Sandbox) -> None:
    with Person(sandbox) as person:
        post = person.client.post
        patch = person.client.patch
        member = person.member_id("gina@acme.example")
        statuses = [
            post("/workspace-members", json={"email": "x@acme.example"}).status_code,
            post(
                "/workspace-members", json={"email": "x@acme.example", "role": "owner"}
            ).status_code,
            post(
                "/workspace-members", json={"email": "x@acme.example", "role": "boss"}
            ).status_code,
            post(
                "/workspace-members", json={"email": "gina@acme.example", "role": "view"}
            ).status_code,
            patch(f"/workspace-members/{member}", json={}).status_code,
            patch(f"/workspace-members/{member}", json={"permissions": []}).status_code,
            patch(f"/workspace-members/{MISSING}", json={"role": "view"}).status_code,
            person.client.delete(f"/workspace-members/{MISSING}").status_code,
        ]
    assert statuses == [400, 400, 400, 400, 400, 400, 404, 404]


def test_block_list_entry_get_and_delete(sandbox: Sandbox) -> None:
    with Person(sandbox) as person:
        created = person.call("POST", "/block-lists-entries", json={"bl_value": "rival.example"})
        assert person.call("GET", f"/block-lists-entries/{created['id']}") == created
        assert person.call("DELETE", f"/block-lists-entries/{created['id']}") == created
        assert person.client.delete(f"/block-lists-entries/{created['id']}").status_code == 404
        values = [e["bl_value"] for e in person.call("GET", "/block-lists-entries")["items"]]
    assert "rival.example" not in values


def test_writes_need_their_scopes(sandbox: Sandbox) -> None:
    reader = sandbox.add_key("reader", ["workspace_members:read", "block_list_entries:read"])
    with Person(sandbox) as person:
        headers = {"Authorization": f"Bearer {reader.key}"}
        member = person.member_id("gina@acme.example")
        denied = [
            person.client.patch(
                f"/workspace-members/{member}", json={"role": "admin"}, headers=headers
            ).status_code,
            person.client.delete(f"/workspace-members/{member}", headers=headers).status_code,
        ]
    assert denied == [401, 401]


def test_every_write_response_conforms_to_the_document(sandbox: Sandbox, openapi_contract) -> None:
    """Explicitly (the fixture checks at teardown too): successes and errors of the new writes."""
    test_member_invite_get_update_and_remove(sandbox)
    test_member_writes_refuse_what_the_document_refuses(sandbox)
    test_block_list_entry_get_and_delete(sandbox)
    responses = list(sandbox.responses)
    operations = {r.operation for r in responses if r.status == 200}

    assert {
        "POST /workspace-members",
        "GET /workspace-members/{id}",
        "PATCH /workspace-members/{id}",
        "DELETE /workspace-members/{id}",
        "GET /block-lists-entries/{id}",
        "DELETE /block-lists-entries/{id}",
    } <= operations
    assert openapi_contract.check_all(responses) == []
