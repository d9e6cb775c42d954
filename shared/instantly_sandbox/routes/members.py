"""`GET /workspace-members`, with the `accepted` and `search` filters."""

from __future__ import annotations

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import Workspace
from instantly_sandbox.validation import query_bool


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


ROUTES = (Route("GET", "/workspace-members", list_members),)
