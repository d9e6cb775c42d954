"""`GET /accounts`: pages by `timestamp_created&email`, the cursor format the document states."""

from __future__ import annotations

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.pagination import list_body, page, parse_limit
from instantly_sandbox.state import Workspace
from instantly_sandbox.validation import query_number


def list_accounts(ws: Workspace, req: ApiRequest) -> Reply:
    limit = parse_limit(req.query)
    search = (req.query.get("search") or "").lower()
    status = query_number(req.query, "status")
    with ws.lock:
        accounts = [
            account
            for account in ws.accounts.values()
            if search in account.email.lower() and (status is None or account.status == status)
        ]
        items, cursor = page(
            accounts,
            lambda a: a.cursor,
            limit=limit,
            starting_after=req.query.get("starting_after"),
        )
        return ok(list_body([account.to_json() for account in items], cursor))


ROUTES = (Route("GET", "/accounts", list_accounts),)
