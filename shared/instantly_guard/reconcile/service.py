"""The reconciliation as a service: collaborators built once from configuration, one run per
request, and the one place where a run's outcome becomes an HTTP status.

    200  the run ended as planned (complete, a duplicate Scheduler delivery, another run busy or
         first to write the checkpoint), whatever it found missing: that is the report's and
         the alert's business, not a reason for Scheduler to retry
    500  a permanent problem a person must fix: missing scope, invalid key, no paid plan
    503  a transient failure (Instantly, Pub/Sub or Cloud Storage unavailable): the checkpoint
         holds what was settled; Scheduler's retry or the next run goes on from there. Also,
         with Retry-After, while the service cannot be built (bad configuration included:
         `instantly_guard.lazy`, docs/lazy-build.md)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from instantly_guard.audit.checkpoint.base import CheckpointStore
from instantly_guard.audit.service import scheduler_run_key
from instantly_guard.errors import (
    ConfigError,
    GuardError,
)
from instantly_guard.instantly.keys import KeyProvider, StaticKey
from instantly_guard.lazy import (
    BuildFailedError,
    Response,
    classify_run_error,
    unavailable_headers,
)
from instantly_guard.logs import bind_request_context
from instantly_guard.publish.base import Publisher
from instantly_guard.reconcile import checkpoint
from instantly_guard.reconcile.deliveries import DeliveryLog
from instantly_guard.reconcile.recorded import RecordedWebhooks
from instantly_guard.reconcile.report import RunReport
from instantly_guard.reconcile.resume import ProbeResult, probe_receiver
from instantly_guard.reconcile.run import Options, Reconciler, utc_now
from instantly_guard.reconcile.settings import REQUIRED_SCOPE, RESUME_SCOPE, ReconcileSettings
from instantly_guard.secrets.base import SecretStore
from instantly_guard.settings import Backend

_log = logging.getLogger("instantly_guard.reconcile")


def _failure(error: GuardError) -> tuple[bool, str, str]:
    """(permanent, kind, what to do) for a run's error."""
    return classify_run_error(
        error,
        key="the reconciler's",
        needs=f"{REQUIRED_SCOPE}, and {RESUME_SCOPE} with RECONCILE_RESUME=true",
    )


def respond(report: RunReport) -> Response:
    body = report.to_json()
    if report.error is None:
        return Response(200, body)
    permanent, kind, message = _failure(report.error)
    body["error"] = {"kind": kind, "message": message}
    return Response(500 if permanent else 503, body)


class ReconcileService:
    """One per process: holds the Instantly client, the publisher and the store."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        project: str | None = None,
        log_level: str = "INFO",
        close: Callable[[], None] | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.log_level = log_level
        self._project = project
        self._close = close

    def run(self, run_key: str | None = None) -> RunReport:
        report = self.reconciler.run(run_key)
        self._log(report)
        return report

    def handle(self, method: str, headers: Mapping[str, str]) -> Response:
        if method.upper() != "POST":
            return Response(
                405, {"error": {"kind": "method", "message": "use POST"}}, {"Allow": "POST"}
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        with bind_request_context(lowered.get("x-cloud-trace-context"), self._project):
            report = self.run(scheduler_run_key(lowered))
        return respond(report)

    def _log(self, report: RunReport) -> None:
        # One line per run with every counter: the log-based metric and alert read `missing`.
        fields = report.to_json()
        fields.pop("missing_event_ids", None)
        if report.error is not None:
            permanent, kind, message = _failure(report.error)
            fields["error"] = {"kind": kind}
            level = logging.ERROR if permanent else logging.WARNING
            _log.log(level, "reconcile failed: %s", message, extra={"fields": fields})
            return
        noteworthy = report.missing or report.resumed or report.foreign or report.refused
        level = logging.WARNING if noteworthy else logging.INFO
        _log.log(level, "reconcile %s", report.outcome, extra={"fields": fields})

    def close(self) -> None:
        if self._close is not None:
            self._close()
        closer = getattr(self.reconciler, "close", None)
        if callable(closer):
            closer()


# -- building from configuration -----------------------------------------------------------------


def _key_provider(settings: ReconcileSettings) -> KeyProvider:
    key = settings.key
    if key.secret_name is not None:
        from instantly_guard.secrets.factory import open_store
        from instantly_guard.secrets.provider import secret_key_provider

        store = open_store(settings.common, project=key.secret_project)
        return secret_key_provider(store, key.secret_name)
    if key.value is None:  # settings validation makes this unreachable
        raise ConfigError("no Instantly key configured")
    return StaticKey(key.value)


def _recorded(settings: ReconcileSettings, store: SecretStore | None) -> RecordedWebhooks | None:
    """The webhook secret's recorded list, read through the secret store port (metadata only)."""
    ref = settings.webhook_secret
    if ref is None:
        return None
    if store is None:
        from instantly_guard.secrets.factory import open_store

        store = open_store(settings.common, project=ref.project)
    return RecordedWebhooks(store, ref.name)


def _publisher(settings: ReconcileSettings) -> Publisher:
    if settings.common.backend is Backend.GCP:
        from instantly_guard.publish.gcp import PubSubPublisher

        return PubSubPublisher(settings.topic or "", emulator_host=settings.pubsub_emulator_host)
    from instantly_guard.publish.local import OutboxPublisher

    return OutboxPublisher(settings.common.state_dir)


def _store(settings: ReconcileSettings) -> CheckpointStore:
    if settings.common.backend is not Backend.GCP:
        return checkpoint.local_store(settings.common.state_dir)
    from google.cloud.storage import Client as StorageClient

    if settings.storage_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        client = StorageClient(
            project=settings.common.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": settings.storage_emulator_host},
        )
    else:
        client = StorageClient(project=settings.common.project)
    return checkpoint.gcs_store(
        client, settings.checkpoint_bucket or "", settings.checkpoint_object
    )


def build_service(
    env: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utc_now,
    publisher: Publisher | None = None,
    store: CheckpointStore | None = None,
    probe: Callable[[str], ProbeResult] = probe_receiver,
    client_options: Mapping[str, Any] | None = None,
    secret_store: SecretStore | None = None,
) -> ReconcileService:
    """Everything a run needs, from an environment mapping. Raises ConfigError listing every
    problem. Collaborators may be injected (tests); `secret_store` is where the webhook secret
    (RECONCILE_WEBHOOK_SECRET) is read."""
    from instantly_guard.instantly.client import InstantlyClient
    from instantly_guard.instantly.ratelimit import RateLimiter

    settings = ReconcileSettings.from_env(env)
    limiter = RateLimiter(settings.common.rate_per_second, settings.common.rate_per_minute)
    client = InstantlyClient(
        _key_provider(settings),
        settings.common.api_base,
        **{"rate_limiter": limiter, "timeout": 30.0, **(client_options or {})},
    )
    publisher = publisher or _publisher(settings)
    options = Options(
        lookback=settings.lookback,
        retry_grace=settings.retry_grace,
        day_margin=settings.day_margin,
        resume=settings.resume,
        time_budget=settings.time_budget,
        max_body_bytes=settings.max_body_bytes,
    )
    reconciler = Reconciler(
        DeliveryLog(client),
        publisher,
        store or _store(settings),
        options,
        webhooks=client,
        webhook_ids=settings.webhook_ids,
        recorded=_recorded(settings, secret_store),
        urls=settings.webhook_urls,
        probe=probe,
        clock=clock,
    )

    def close() -> None:
        client.close()
        publisher.close()

    return ReconcileService(
        reconciler,
        project=settings.common.project,
        log_level=settings.common.log_level,
        close=close,
    )


def build_failure_response(error: BuildFailedError) -> Response:
    """The answer while the service cannot be built (`instantly_guard.lazy`): 503 and
    Retry-After, for a configuration error too, so Scheduler's retry tries again after a fix."""
    return Response(
        503,
        {"error": {"kind": error.kind, "message": error.reason, "problems": list(error.problems)}},
        unavailable_headers(error),
    )
