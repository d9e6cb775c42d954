"""`/api-keys`: create (key string shown once), list and delete (masked). Audited: 37 and 38."""

from __future__ import annotations

from instantly_sandbox.access import KEY_SCOPES
from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.errors import bad_request, not_found
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import Workspace
from instantly_sandbox.validation import object_body, string_field, uuid_param


def create(ws: Workspace, req: ApiRequest) -> Reply:
    body = object_body(req.body, allowed=("name", "scopes"), required=("name", "scopes"))
    name = string_field(body, "name") or ""
    scopes = body["scopes"]
    if not isinstance(scopes, list):
        raise bad_request("body/scopes must be array")
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str):
            raise bad_request(f"body/scopes/{index} must be string")
        if scope not in KEY_SCOPES:
            raise bad_request(f"body/scopes/{index} must be equal to one of the allowed values")
    with ws.lock:
        record = ws.create_key(name, scopes)
        ws.audit_logs.add(
            37,
            **req.audit_fields(),
            audit_metadata={"id": record.id, "name": record.name, "scopes": list(record.scopes)},
        )
    return ok(record.to_json(reveal=True))


def list_keys(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    with ws.lock:
        items, cursor = page(
            ws.api_keys.values(),
            lambda key: key.id,
            limit=limit,
            starting_after=req.query.get("starting_after"),
        )
        return ok(list_body([key.to_json() for key in items], cursor))


def delete(ws: Workspace, req: ApiRequest) -> Reply:
    key_id = uuid_param(req.path_params)
    with ws.lock:
        record = ws.delete_key(key_id)
        if record is None:
            raise not_found("API key not found")
        ws.audit_logs.add(
            38,
            **req.audit_fields(),
            audit_metadata={"id": record.id, "name": record.name, "scopes": list(record.scopes)},
        )
    return ok(record.to_json())


ROUTES = (
    Route("POST", "/api-keys", create),
    Route("GET", "/api-keys", list_keys),
    Route("DELETE", "/api-keys/{id}", delete),
)
