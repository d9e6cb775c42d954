"""`GET /webhook-events`: the delivery history the sandbox's deliveries leave behind."""

from __future__ import annotations

from datetime import date

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.errors import bad_request
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import Workspace
from instantly_sandbox.validation import query_bool


def _day(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(f'querystring/{name} must match format "date"') from None


def list_events(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    success = query_bool(req.query, "success")
    first, last = _day(req.query.get("from"), "from"), _day(req.query.get("to"), "to")
    search = req.query.get("search")
    with ws.lock:
        events = [
            event
            for event in ws.webhook_events.values()
            if (success is None or event.success == success)
            and (first is None or event.timestamp_created[:10] >= first)
            and (last is None or event.timestamp_created[:10] <= last)
            and (search is None or search in (event.webhook_url, event.payload.get("lead_email")))
        ]
        items, cursor = page(
            events, lambda e: e.id, limit=limit, starting_after=req.query.get("starting_after")
        )
        return ok(list_body([event.to_json() for event in items], cursor))


ROUTES = (Route("GET", "/webhook-events", list_events),)
