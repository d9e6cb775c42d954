"""Cloud Function `export_audit_logs`: Cloud Scheduler calls it (OIDC) every few minutes to copy
new Instantly audit-log entries into Cloud Logging.

Thin by design: the run lives in `instantly_guard.audit` (`exporter.py` for the algorithm,
`service.py` for the status mapping). Collaborators are built once per instance, on the first
request, from the environment; nothing is read or connected at import time.

Answers a JSON summary: 200 when the run ended as planned (including a duplicate Scheduler
delivery or a run that lost the checkpoint to another), 500 for a problem a person must fix
(missing scope, revoked key, no paid plan, bad configuration), 503 for a transient failure.
"""

from __future__ import annotations

import json
import os

import flask
import functions_framework

from instantly_guard.audit.service import AuditExportService, LazyService, build_service
from instantly_guard.check.scheduled import run_scheduled_check
from instantly_guard.logs import configure_logging


def _build() -> AuditExportService:
    configure_logging()  # so that a configuration error is logged as JSON too
    service = build_service(os.environ)
    configure_logging(service.log_level)
    return service


_service = LazyService(_build)


@functions_framework.http
def export_audit_logs(request: flask.Request) -> flask.Response:
    response = _service.handle(request.method, dict(request.headers))
    if response.status == 200:
        run_scheduled_check(os.environ)  # AUDIT_RUN_CHECK=true: findings logged as warnings
    return flask.Response(
        json.dumps(response.body, separators=(",", ":")),
        status=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
    )
