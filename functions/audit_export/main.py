"""Cloud Function `export_audit_logs`: Cloud Scheduler calls it (OIDC) every few minutes to copy
new Instantly audit-log entries into Cloud Logging.

Thin by design: the run lives in `instantly_guard.audit` (`exporter.py` for the algorithm,
`service.py` for the status mapping). Collaborators are built once per instance, on the first
request, from the environment; nothing is read or connected at import time. A failed build is
answered 503 with Retry-After and tried again (`instantly_guard.lazy`, docs/lazy-build.md).

Answers a JSON summary: 200 when the run ended as planned (including a duplicate Scheduler
delivery or a run that lost the checkpoint to another), 500 for a problem a person must fix
(missing scope, revoked key, no paid plan), 503 for a transient failure or a failed build.
"""

from __future__ import annotations

import json
import os

import flask
import functions_framework

from instantly_guard.audit.service import build_failure_response, build_service
from instantly_guard.check.scheduled import build_scheduled_check, run_scheduled_check
from instantly_guard.lazy import BuildFailedError, Lazy

_service = Lazy(lambda: build_service(os.environ), what="audit export", env=lambda: os.environ)
_check = Lazy(lambda: build_scheduled_check(os.environ), what="scheduled posture check")


@functions_framework.http
def export_audit_logs(request: flask.Request) -> flask.Response:
    try:
        response = _service.get().handle(request.method, dict(request.headers))
    except BuildFailedError as exc:
        response = build_failure_response(exc)
    if response.status == 200:
        run_scheduled_check(_check)  # AUDIT_RUN_CHECK=true: findings logged as warnings
    return flask.Response(
        json.dumps(response.body, separators=(",", ":")),
        status=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
    )
