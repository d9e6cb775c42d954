"""`/workspace-members`: list (with the `accepted` and `search` filters), invite, get, update,
remove, as the OpenAPI document describes them.

Instantly's audit log records none of these (the gap `instantly_guard.inventory` fills), so
neither does the sandbox. A member made with `POST` is an invite (`accepted` false) until the
person accepts it in the app (a test sets `accepted` on the state). The document lists `owner`
and `client` in the role enum but says neither can be set through the API: both answer 400.
`PATCH` takes only `nickname` and `role`: permissions change in the app, not the API.
"""

from __future__ import annotations

from typing import Any

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.errors import bad_request, not_found
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import MemberRecord, Workspace
from instantly_sandbox.validation import (
    enum_field,
    object_body,
    query_bool,
    string_field,
    uuid_param,
)

ROLES = ("owner", "admin", "editor", "view", "client")
API_ROLES = ("admin", "editor", "view")
_CREATE_FIELDS = ("email", "user_email", "nickname", "role", "permissions")
_UPDATE_FIELDS = ("nickname", "role")


def list_members(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    accepted = query_bool(req.query, "accepted")
    search = (req.query.get("search") or "").lower()
    with ws.lock:
        members = [
            member
            for member in ws.members.values()
            if (accepted is None or member.accepted == accepted)
            and (
                not search
                or search in member.email.lower()
                or search in f"{member.first_name} {member.last_name}".lower()
            )
        ]
        items, cursor = page(
            members, lambda m: m.id, limit=limit, starting_after=req.query.get("starting_after")
        )
        return ok(list_body([member.to_json() for member in items], cursor))


def _role(body: dict[str, Any]) -> str:
    role = enum_field(body, "role", ROLES)
    if role not in API_ROLES:
        raise bad_request(f"role {role!r} cannot be assigned through the API")
    return str(role)


def _nickname(body: dict[str, Any]) -> str | None:
    nickname = string_field(body, "nickname", nullable=True)
    if nickname is not None and len(nickname) > 80:
        raise bad_request("body/nickname must NOT have more than 80 characters")
    return nickname


def _member(ws: Workspace, req: ApiRequest) -> MemberRecord:
    member = ws.members.get(uuid_param(req.path_params))
    if member is None:
        raise not_found("Workspace member not found")
    return member


def invite(ws: Workspace, req: ApiRequest) -> Reply:
    body = object_body(req.body, allowed=_CREATE_FIELDS, required=("email", "role"))
    email = (string_field(body, "email") or "").strip()
    if "@" not in email:
        raise bad_request('body/email must match format "email"')
    role = _role(body)
    nickname = _nickname(body) if "nickname" in body else None
    permissions = body.get("permissions")
    if permissions is not None and (
        not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
    ):
        raise bad_request("body/permissions must be array,null")
    with ws.lock:
        if any(m.email.lower() == email.lower() for m in ws.members.values()):
            raise bad_request(f"{email} is already a member of this workspace")
        member = ws.add_member(email, role, accepted=False, issuer_id=req.key.id)
        member.nickname = nickname
        member.permissions = list(permissions) if permissions is not None else None
        return ok(member.to_json())


def get(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        return ok(_member(ws, req).to_json())


def update(ws: Workspace, req: ApiRequest) -> Reply:
    uuid_param(req.path_params)
    body = object_body(req.body, allowed=_UPDATE_FIELDS, min_properties=1)
    role = _role(body) if "role" in body else None
    nickname = _nickname(body) if "nickname" in body else None
    with ws.lock:
        member = _member(ws, req)
        if role is not None:
            member.role = role
        if "nickname" in body:
            member.nickname = nickname
        return ok(member.to_json())


def remove(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        member = _member(ws, req)
        del ws.members[member.id]
        return ok(member.to_json())


ROUTES = (
    Route("GET", "/workspace-members", list_members),
    Route("POST", "/workspace-members", invite),
    Route("GET", "/workspace-members/{id}", get),
    Route("PATCH", "/workspace-members/{id}", update),
    Route("DELETE", "/workspace-members/{id}", remove),
)
