"""`GET /webhook-events` and `GET /webhook-events/{id}`: the delivery history the sandbox's
deliveries leave behind, shown as the workspace's `DeliveryLogOptions` say."""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterator
from datetime import date

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.errors import bad_request, not_found
from instantly_sandbox.pagination import list_body, parse_limit
from instantly_sandbox.state import WebhookEventRecord, Workspace
from instantly_sandbox.validation import query_bool, uuid_param


def _day(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(f'querystring/{name} must match format "date"') from None


# The ids of a workspace's records in order, rebuilt only when records were added: a page is then
# found by bisecting to the cursor and filtering forward, so a listing of a 100k-record log (the
# reconcile benchmark) costs a page's work per request, not the whole log's. Records are never
# removed, and in-place updates keep their id. Keyed by id() (a workspace is not hashable), so
# each entry also holds a weak reference to its workspace and goes when the workspace does: a
# later workspace given the same id() with as many records must not get the other's ids.
_ORDER: dict[int, tuple[weakref.ref[Workspace], int, list[str]]] = {}


def _ordered_ids(ws: Workspace) -> list[str]:
    key = id(ws)
    cached = _ORDER.get(key)
    if cached is None or cached[0]() is not ws or cached[1] != len(ws.webhook_events):
        ref = weakref.ref(ws, lambda _: _ORDER.pop(key, None))
        cached = (ref, len(ws.webhook_events), sorted(ws.webhook_events))
        _ORDER[key] = cached
    return cached[2]


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

    def wanted(event: WebhookEventRecord) -> bool:
        return (
            (success is None or event.success == success)
            and (first is None or event.timestamp_created[:10] >= first)
            and (last is None or event.timestamp_created[:10] <= last)
            and (search is None or search in (event.webhook_url, event.payload.get("lead_email")))
        )

    with ws.lock:
        ids = _ordered_ids(ws)
        starting_after = req.query.get("starting_after")
        if options.order == "desc":
            start = bisect.bisect_left(ids, starting_after) if starting_after else len(ids)
            candidates: Iterator[str] = (ids[i] for i in range(start - 1, -1, -1))
        else:
            start = bisect.bisect_right(ids, starting_after) if starting_after else 0
            candidates = (ids[i] for i in range(start, len(ids)))
        items: list[WebhookEventRecord] = []
        for event_id in candidates:
            event = ws.webhook_events[event_id]
            if wanted(event):
                items.append(event)
                if len(items) == limit:
                    break
        cursor = items[-1].id if items and len(items) == limit else None
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
