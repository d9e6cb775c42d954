"""`/block-lists-entries` (plural, as Instantly spells it): list, create, get, delete. Instantly's
audit log records no block-list change, so neither does the sandbox."""

from __future__ import annotations

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.errors import bad_request, not_found
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import BlockListRecord, Workspace
from instantly_sandbox.validation import object_body, query_bool, string_field, uuid_param


def list_entries(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    domains_only = query_bool(req.query, "domains_only")
    search = (req.query.get("search") or "").lower()
    with ws.lock:
        entries = [
            entry
            for entry in ws.block_list.values()
            if (not domains_only or entry.is_domain) and search in entry.bl_value.lower()
        ]
        items, cursor = page(
            entries, lambda e: e.id, limit=limit, starting_after=req.query.get("starting_after")
        )
        return ok(list_body([entry.to_json() for entry in items], cursor))


def create(ws: Workspace, req: ApiRequest) -> Reply:
    body = object_body(req.body, allowed=("bl_value",), required=("bl_value",))
    value = (string_field(body, "bl_value") or "").strip().lower()
    if not value:
        raise bad_request("body/bl_value must NOT have fewer than 1 characters")
    with ws.lock:
        return ok(ws.add_block_list_entry(value).to_json())


def _entry(ws: Workspace, req: ApiRequest) -> BlockListRecord:
    entry = ws.block_list.get(uuid_param(req.path_params))
    if entry is None:
        raise not_found("Block list entry not found")
    return entry


def get(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        return ok(_entry(ws, req).to_json())


def delete(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        entry = _entry(ws, req)
        del ws.block_list[entry.id]
        return ok(entry.to_json())


ROUTES = (
    Route("GET", "/block-lists-entries", list_entries),
    Route("POST", "/block-lists-entries", create),
    Route("GET", "/block-lists-entries/{id}", get),
    Route("DELETE", "/block-lists-entries/{id}", delete),
)
