"""`/webhooks` CRUD, resume, and the disable control."""

from __future__ import annotations

import pytest

from instantly_sandbox import Sandbox
from instantly_sandbox.seed import HOOK_DISABLED, HOOK_NO_AUTH


def test_create_get_update_delete(sandbox: Sandbox, admin) -> None:
    created = admin.post(
        "/webhooks",
        json={
            "target_hook_url": "https://hooks.acme.example/instantly",
            "event_type": "reply_received",
            "name": "replies",
            "headers": {"x-webhook-secret": "a" * 32},
        },
    )
    assert created.status_code == 200
    hook = created.json()
    assert hook["status"] == 1
    assert hook["organization"] == sandbox.state.id
    assert admin.get(f"/webhooks/{hook['id']}").json() == hook

    patched = admin.patch(
        f"/webhooks/{hook['id']}", json={"headers": {"x-webhook-secret": "b" * 32}}
    )
    assert patched.json()["headers"] == {"x-webhook-secret": "b" * 32}
    assert sandbox.state.webhooks[hook["id"]].headers == {"x-webhook-secret": "b" * 32}

    assert admin.delete(f"/webhooks/{hook['id']}").json()["id"] == hook["id"]
    assert admin.get(f"/webhooks/{hook['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "body must have required property 'target_hook_url'"),
        ({"target_hook_url": "ftp://x"}, 'body/target_hook_url must match pattern "^https?://"'),
        (
            {"target_hook_url": "https://x.example", "event_type": "link_clicked"},
            "body/event_type must be equal to one of the allowed values",
        ),
        (
            {"target_hook_url": "https://x.example", "headers": {"a": 1}},
            "body/headers/a must be string",
        ),
        (
            {"target_hook_url": "https://x.example", "secret": "x"},
            "body must NOT have additional properties",
        ),
    ],
)
def test_invalid_webhook_body_is_400(admin, body: dict, message: str) -> None:
    response = admin.post("/webhooks", json=body)
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_patch_needs_at_least_one_field(sandbox: Sandbox, admin) -> None:
    hook_id = sandbox.state.webhook_named(HOOK_NO_AUTH).id
    response = admin.patch(f"/webhooks/{hook_id}", json={})
    assert response.status_code == 400
    assert response.json()["message"] == "body must NOT have fewer than 1 properties"


def test_seeded_disabled_webhook_resumes(sandbox: Sandbox, admin) -> None:
    hook_id = sandbox.state.webhook_named(HOOK_DISABLED).id
    before = admin.get(f"/webhooks/{hook_id}").json()
    assert before["status"] == -1
    assert before["timestamp_error"] is not None
    after = admin.post(f"/webhooks/{hook_id}/resume").json()
    assert after["status"] == 1
    assert after["timestamp_error"] is None


def test_disable_control_marks_error_and_audits(sandbox: Sandbox, admin) -> None:
    hook_id = sandbox.state.webhook_named(HOOK_NO_AUTH).id
    sandbox.disable_webhook(hook_id)
    assert admin.get(f"/webhooks/{hook_id}").json()["status"] == -1
    last = sandbox.state.audit_logs.entries()[-1]
    assert (last.activity_type, last.webhook_id) == (20, hook_id)


def test_webhook_scopes(sandbox: Sandbox, client_for) -> None:
    reader = client_for(sandbox, sandbox.add_key("hooks-read", ["webhooks:read"]).key)
    hook_id = sandbox.state.webhook_named(HOOK_NO_AUTH).id
    assert reader.get(f"/webhooks/{hook_id}").status_code == 200
    denied = reader.post(f"/webhooks/{hook_id}/resume")
    assert denied.status_code == 401
    assert "Required: webhooks:update" in denied.json()["message"]
