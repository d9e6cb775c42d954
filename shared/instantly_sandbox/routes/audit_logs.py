"""`GET /audit-logs`: filters, limit 1..1000, and the configurable listing order (see audit.py).

`start_date`/`end_date` are days in the store's `date_filter_utc_offset` (default UTC), `end_date`
inclusive unless `date_filter_end_exclusive`: Instantly documents neither, so tests can vary both."""

from __future__ import annotations

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.audit import AuditQuery
from instantly_sandbox.pagination import AUDIT_MAX_LIMIT, list_body, parse_limit
from instantly_sandbox.state import Workspace
from instantly_sandbox.validation import query_day_bound, query_number


def list_logs(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query, maximum=AUDIT_MAX_LIMIT)
    activity = query_number(req.query, "activity_type")
    store = ws.audit_logs
    offset, exclusive = store.date_filter_utc_offset, store.date_filter_end_exclusive
    query = AuditQuery(
        activity_type=int(activity) if activity is not None else None,
        search=req.query.get("search") or None,
        start_ms=query_day_bound(req.query, "start_date", end=False, utc_offset=offset),
        end_ms=query_day_bound(
            req.query, "end_date", end=True, utc_offset=offset, end_exclusive=exclusive
        ),
    )
    entries, cursor = ws.audit_logs.page(
        query, limit=limit, starting_after=req.query.get("starting_after") or None
    )
    return ok(list_body([entry.to_json() for entry in entries], cursor))


ROUTES = (Route("GET", "/audit-logs", list_logs),)
