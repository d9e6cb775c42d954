"""`GET /workspaces/current`: the workspace the key belongs to."""

from __future__ import annotations

from instantly_sandbox.api import ApiRequest, Reply, Route, ok
from instantly_sandbox.state import Workspace


def current(ws: Workspace, req: ApiRequest) -> Reply:
    with ws.lock:
        return ok(ws.workspace.to_json())


ROUTES = (Route("GET", "/workspaces/current", current),)
