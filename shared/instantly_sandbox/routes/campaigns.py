"""`GET /campaigns`, enough for listing and for cheap key probes (`?limit=1`)."""

from __future__ import annotations

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import Workspace
from instantly_sandbox.validation import query_number


def list_campaigns(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    search = (req.query.get("search") or "").lower()
    status = query_number(req.query, "status")
    with ws.lock:
        campaigns = [
            campaign
            for campaign in ws.campaigns.values()
            if search in campaign.name.lower() and (status is None or campaign.status == status)
        ]
        items, cursor = page(
            campaigns, lambda c: c.id, limit=limit, starting_after=req.query.get("starting_after")
        )
        return ok(list_body([campaign.to_json() for campaign in items], cursor))


ROUTES = (Route("GET", "/campaigns", list_campaigns),)
