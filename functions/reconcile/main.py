"""Cloud Function `reconcile_webhooks`: Cloud Scheduler calls it (OIDC) every few minutes to
publish the events Instantly failed to deliver to the webhook receiver, and optionally to resume
a webhook Instantly disabled.

Thin by design: the run lives in `instantly_guard.reconcile` (`run.py` for the algorithm,
`service.py` for the status mapping). Collaborators are built once per instance, on the first
request, from the environment; nothing is read or connected at import time.

Answers the run's JSON report: 200 when the run ended as planned (whatever it found missing),
500 for a problem a person must fix, 503 for a transient failure or a failed build (with
Retry-After; tried again, `instantly_guard.lazy`, docs/lazy-build.md).
"""

from __future__ import annotations

import json
import os

import flask
import functions_framework

from instantly_guard.lazy import BuildFailedError, Lazy
from instantly_guard.reconcile.service import build_failure_response, build_service

_service = Lazy(
    lambda: build_service(os.environ), what="webhook reconciliation", env=lambda: os.environ
)


@functions_framework.http
def reconcile_webhooks(request: flask.Request) -> flask.Response:
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
