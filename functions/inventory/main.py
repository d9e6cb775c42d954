"""Cloud Function `run_inventory`: Cloud Scheduler calls it (OIDC) every few minutes to turn the
workspace's members, API keys, webhooks, block list and settings into change entries in the
exported audit log (what Instantly's own audit log does not record).

Thin by design: the run lives in `instantly_guard.inventory` (`run.py` for the algorithm,
`service.py` for the status mapping). Collaborators are built once per instance, on the first
request, from the environment; nothing is read or connected at import time.

Answers the run's JSON report: 200 when the run ended as planned, 500 for a problem a person must
fix, 503 for a transient failure or a failed build (with Retry-After; docs/lazy-build.md).
"""

from __future__ import annotations

import json
import os

import flask
import functions_framework

from instantly_guard.inventory.service import build_failure_response, build_service
from instantly_guard.lazy import BuildFailedError, Lazy

_service = Lazy(lambda: build_service(os.environ), what="inventory", env=lambda: os.environ)


@functions_framework.http
def run_inventory(request: flask.Request) -> flask.Response:
    try:
        response = _service.get().handle(request.method, dict(request.headers))
    except BuildFailedError as exc:
        response = build_failure_response(exc)
    return flask.Response(
        json.dumps(response.body, separators=(",", ":")),
        status=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
    )
