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


SECRET_VALUE = "header-value-" + "0123456789" * 2  # pragma: allowlist secret


@pytest.mark.parametrize(
    ("read", "echo"), [("raw", "masked"), ("masked", "raw"), ("masked", "masked")]
)
def test_header_values_read_back_raw_or_masked_as_configured(
    sandbox: Sandbox, admin, read: str, echo: str
) -> None:
    sandbox.set_webhook_headers(read=read, echo=echo)
    masked = SECRET_VALUE[:4] + "*" * 8
    created = admin.post(
        "/webhooks",
        json={
            "target_hook_url": "https://h.example/x",
            "event_type": "reply_received",
            "headers": {"x-webhook-secret": SECRET_VALUE},
        },
    ).json()
    shown = {"raw": SECRET_VALUE, "masked": masked}
    assert created["headers"] == {"x-webhook-secret": shown[echo]}
    assert admin.get(f"/webhooks/{created['id']}").json()["headers"] == {
        "x-webhook-secret": shown[read]
    }
    listed = [h for h in admin.get("/webhooks").json()["items"] if h["id"] == created["id"]]
    assert listed[0]["headers"] == {"x-webhook-secret": shown[read]}
    patched = admin.patch(f"/webhooks/{created['id']}", json={"name": "n"}).json()
    assert patched["headers"] == {"x-webhook-secret": shown[echo]}
    assert sandbox.state.webhooks[created["id"]].headers == {"x-webhook-secret": SECRET_VALUE}

    sandbox.reset()
    assert (sandbox.state.webhook_header_read, sandbox.state.webhook_header_echo) == (read, echo)
    with pytest.raises(ValueError, match="raw, masked"):
        sandbox.set_webhook_headers(read="hashed", echo="raw")  # type: ignore[arg-type]


def test_the_control_api_switches_the_header_views(sandbox: Sandbox, client_for) -> None:
    import httpx

    answer = httpx.put(sandbox.control_url + "/webhook-headers", json={"read": "masked"})
    assert answer.json() == {"read": "masked", "echo": "raw"}
    assert sandbox.state.webhook_header_read == "masked"


def test_the_test_endpoint_delivers_with_the_stored_headers(
    sandbox: Sandbox, admin, receiver
) -> None:
    sandbox.set_webhook_headers(read="masked", echo="masked")
    hook = admin.post(
        "/webhooks",
        json={
            "target_hook_url": receiver.url,
            "event_type": "reply_received",
            "headers": {"x-webhook-secret": SECRET_VALUE},
        },
    ).json()

    answer = admin.post(f"/webhooks/{hook['id']}/test").json()

    assert answer["success"] is True
    assert answer["status_code"] == 200
    [(_, headers, _)] = receiver.requests
    assert {k.lower(): v for k, v in headers.items()}["x-webhook-secret"] == SECRET_VALUE
    receiver.status = 401
    refused = admin.post(f"/webhooks/{hook['id']}/test").json()
    assert (refused["success"], refused["status_code"]) == (False, 401)
    assert admin.post("/webhooks/019ffad2-9cbd-765b-a65b-d6d9e55bbb22/test").status_code == 404
