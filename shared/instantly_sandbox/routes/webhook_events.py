"""`GET /webhook-events` and `GET /webhook-events/{id}`: the delivery history the sandbox's
deliveries leave behind, shown as the workspace's `DeliveryLogOptions` say."""

from __future__ import annotations

from datetime import date

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.errors import bad_request, not_found
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import WebhookEventRecord, Workspace
from instantly_sandbox.validation import query_bool, uuid_param


def _day(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(f'querystring/{name} must match format "date"') from None


def _newest_first(
    events: list[WebhookEventRecord], limit: int, starting_after: str | None
) -> tuple[list[WebhookEventRecord], str | None]:
    ordered = sorted(events, key=lambda e: e.id, reverse=True)
    if starting_after is not None:
        ordered = [e for e in ordered if e.id < starting_after]
    chunk = ordered[:limit]
    return chunk, (chunk[-1].id if chunk and len(chunk) == limit else None)


def list_events(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    success = query_bool(req.query, "success")
    first, last = _day(req.query.get("from"), "from"), _day(req.query.get("to"), "to")
    search = req.query.get("search")
    options = ws.delivery_log
    if options.success_filter == "ignored":
        success = None
    if options.search_filter == "ignored":
        search = None
    with ws.lock:
        events = [
            event
            for event in ws.webhook_events.values()
            if (success is None or event.success == success)
            and (first is None or event.timestamp_created[:10] >= first)
            and (last is None or event.timestamp_created[:10] <= last)
            and (search is None or search in (event.webhook_url, event.payload.get("lead_email")))
        ]
        starting_after = req.query.get("starting_after")
        if options.order == "desc":
            items, cursor = _newest_first(events, limit, starting_after)
        else:
            items, cursor = page(events, lambda e: e.id, limit=limit, starting_after=starting_after)
        return ok(list_body([event.to_json(options) for event in items], cursor))


def get_event(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        event = ws.webhook_events.get(uuid_param(req.path_params))
        if event is None:
            raise not_found("Webhook event not found")
        return ok(event.to_json(ws.delivery_log, detail=True))


ROUTES = (
    Route("GET", "/webhook-events", list_events),
    Route("GET", "/webhook-events/{id}", get_event),
)
