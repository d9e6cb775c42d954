"""`/webhooks`: list, create, get, update, delete, resume, test. Audited: 18 created, 19
updated, 21 resumed (20, disabled by Instantly, comes from `Workspace.disable_webhook`).

Header values read back raw or masked (`Workspace.webhook_header_read` for GET, `..._echo` for
the POST/PATCH answer): Instantly does not document which. `POST /webhooks/{id}/test` delivers
a test event to the target with the webhook's stored headers (as they are, never masked) and
answers what the target said."""

from __future__ import annotations

import re
from typing import Any

from instantly_guard.vocabulary import SUBSCRIBABLE_EVENT_TYPES
from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.delivery import DeliveryError, build_event_payload, post_event
from instantly_sandbox.errors import bad_request, not_found
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import WebhookRecord, Workspace
from instantly_sandbox.validation import enum_field, is_uuid, object_body, string_field, uuid_param

_FIELDS = (
    "campaign",
    "name",
    "target_hook_url",
    "event_type",
    "custom_interest_value",
    "headers",
)
_URL = re.compile(r"^https?://[^\s/]+")


def _checked_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The writable fields of `body`, validated as the `Webhook` schema says."""
    fields: dict[str, Any] = {}
    if "target_hook_url" in body:
        url = string_field(body, "target_hook_url") or ""
        if not _URL.match(url):
            raise bad_request('body/target_hook_url must match pattern "^https?://"')
        fields["target_hook_url"] = url
    if "event_type" in body:
        fields["event_type"] = enum_field(body, "event_type", (*SUBSCRIBABLE_EVENT_TYPES, None))
    if "name" in body:
        fields["name"] = string_field(body, "name", nullable=True)
    if "campaign" in body:
        campaign = body["campaign"]
        if campaign is not None and not is_uuid(campaign):
            raise bad_request('body/campaign must match format "uuid"')
        fields["campaign"] = campaign
    if "custom_interest_value" in body:
        value = body["custom_interest_value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad_request("body/custom_interest_value must be number,null")
        fields["custom_interest_value"] = value
    if "headers" in body:
        headers = body["headers"]
        if headers is not None:
            if not isinstance(headers, dict):
                raise bad_request("body/headers must be object,null")
            for name, value in headers.items():
                if not isinstance(value, str):
                    raise bad_request(f"body/headers/{name} must be string")
            headers = dict(headers)
        fields["headers"] = headers
    return fields


def _read(ws: Workspace, hook: WebhookRecord) -> dict[str, Any]:
    return hook.to_json(masked_headers=ws.webhook_header_read == "masked")


def _echo(ws: Workspace, hook: WebhookRecord) -> dict[str, Any]:
    return hook.to_json(masked_headers=ws.webhook_header_echo == "masked")


def _webhook(ws: Workspace, req: ApiRequest) -> WebhookRecord:
    hook = ws.webhooks.get(uuid_param(req.path_params))
    if hook is None:
        raise not_found("Webhook not found")
    return hook


def list_webhooks(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    campaign = req.query.get("campaign")
    event_type = req.query.get("event_type")
    with ws.lock:
        hooks = [
            hook
            for hook in ws.webhooks.values()
            if (campaign is None or hook.campaign == campaign)
            and (event_type is None or hook.event_type == event_type)
        ]
        items, cursor = page(
            hooks, lambda hook: hook.id, limit=limit, starting_after=req.query.get("starting_after")
        )
        return ok(list_body([_read(ws, hook) for hook in items], cursor))


def create(ws: Workspace, req: ApiRequest) -> Reply:
    body = object_body(req.body, allowed=_FIELDS, required=("target_hook_url",))
    fields = _checked_fields(body)
    with ws.lock:
        hook_id, stamp = ws.new_id()
        hook = WebhookRecord(
            id=hook_id,
            organization=ws.id,
            target_hook_url=fields.pop("target_hook_url"),
            event_type=fields.pop("event_type", None),
            timestamp_created=stamp,
            **fields,
        )
        ws.webhooks[hook.id] = hook
        ws.audit_logs.add(
            18,
            **req.audit_fields(),
            webhook_id=hook.id,
            audit_metadata={"target_hook_url": hook.target_hook_url, "event_type": hook.event_type},
        )
        return ok(_echo(ws, hook))


def get(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        return ok(_read(ws, _webhook(ws, req)))


def update(ws: Workspace, req: ApiRequest) -> Reply:
    # Like the real server, the body is validated before the webhook is looked up.
    uuid_param(req.path_params)
    fields = _checked_fields(object_body(req.body, allowed=_FIELDS, min_properties=1))
    with ws.lock:
        hook = _webhook(ws, req)
        for name, value in fields.items():
            setattr(hook, name, value)
        ws.audit_logs.add(
            19,
            **req.audit_fields(),
            webhook_id=hook.id,
            # Header values are secrets: the audit trail names what changed, never the values.
            audit_metadata={"changed": sorted(fields)},
        )
        return ok(_echo(ws, hook))


def delete(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        hook = _webhook(ws, req)
        del ws.webhooks[hook.id]
        return ok(_read(ws, hook))


def resume(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        hook = _webhook(ws, req)
        hook.status = 1
        hook.timestamp_error = None
        hook.failures = 0
        ws.audit_logs.add(21, **req.audit_fields(), webhook_id=hook.id)
        return ok(_read(ws, hook))


def test(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        hook = _webhook(ws, req)
        url, headers = hook.target_hook_url, dict(hook.headers or {})
        campaign = hook.campaign or next(iter(sorted(ws.campaigns)), None) or ws.ids.new(ws.clock())
        payload = build_event_payload(
            "webhook_test",
            workspace_id=ws.id,
            campaign_id=campaign,
            campaign_name="Webhook test",
            timestamp=ws.clock(),
        )
    # Not under the lock: the target may call the sandbox back.
    try:
        status, elapsed = post_event(url, headers, payload, timeout=10.0)
    except DeliveryError:
        return ok(
            {"success": False, "message": "Webhook test failed", "error": "Connection timeout"}
        )
    success = 200 <= status < 300
    body: dict[str, Any] = {
        "success": success,
        "message": "Webhook test successful" if success else "Webhook test failed",
        "response_time_ms": elapsed,
        "status_code": status,
    }
    if not success:
        body["error"] = f"HTTP {status}"
    return ok(body)


ROUTES = (
    Route("GET", "/webhooks", list_webhooks),
    Route("POST", "/webhooks", create),
    Route("GET", "/webhooks/{id}", get),
    Route("PATCH", "/webhooks/{id}", update),
    Route("DELETE", "/webhooks/{id}", delete),
    Route("POST", "/webhooks/{id}/resume", resume),
    Route("POST", "/webhooks/{id}/test", test),
)
