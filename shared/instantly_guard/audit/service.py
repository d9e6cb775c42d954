"""The audit export as a service: collaborators built once from configuration, one run per
request, and the one place where a run's outcome becomes an HTTP status.

Status choice (Cloud Scheduler counts any non-2xx as a failed attempt and retries it per the
job's retry config; it cannot be told "do not retry"):

    200  the run ended as planned: complete, stopped at its time budget, lost the checkpoint to
         another run, a duplicate Scheduler delivery, or another run in progress
    500  a permanent problem a person must fix: the key lacks `audit_logs:read`, was revoked or
         is invalid, no paid plan, a sink or store refusing for good. The
         job shows as failed; a retry costs one rejected API call and changes nothing
    503  a transient failure (Instantly 5xx/429/timeouts after the client's own retries, Cloud
         Logging or Cloud Storage unavailable): the job shows as failed and Scheduler's retry
         config tries again; the checkpoint holds everything written so far. Also the answer,
         with Retry-After, while the service cannot be built (bad configuration included):
         `instantly_guard.lazy`'s policy, the same for every function (docs/lazy-build.md)

Every failure is logged once at ERROR (permanent) or WARNING (transient) with what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from instantly_guard.audit.chainhead import ChainHead
from instantly_guard.audit.checkpoint.base import Checkpoint, CheckpointStore
from instantly_guard.audit.checkpoint.local import LocalCheckpointStore
from instantly_guard.audit.exporter import (
    ClientPageSource,
    Exporter,
    ExportOptions,
    PageSource,
    StopReason,
    Summary,
    utc_now,
)
from instantly_guard.audit.integrity import ChainReport
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.audit.settings import AuditSettings, KeySource
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.audit.sinks.local import JsonlSink, read_entries
from instantly_guard.audit.windows import WINDOW_PAGES, WindowedPageSource
from instantly_guard.detections.settings import DEFAULT_FINDINGS_LOG
from instantly_guard.detections.state import LocalStateStore, StateStore
from instantly_guard.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    ConflictError,
    GuardError,
    InstantlyError,
    PaymentRequiredError,
    PermissionDeniedError,
    ScopeError,
)
from instantly_guard.instantly.keys import CachedKey, KeyProvider, StaticKey
from instantly_guard.lazy import BuildFailedError, Response, unavailable_headers
from instantly_guard.logs import bind_request_context
from instantly_guard.secret import Secret
from instantly_guard.settings import Backend

_log = logging.getLogger("instantly_guard.audit")

REQUIRED_SCOPE = "audit_logs:read"
JOB_HEADER = "x-cloudscheduler-jobname"
SCHEDULE_HEADER = "x-cloudscheduler-scheduletime"
BACKFILL_BUDGET = timedelta(days=1)


def scheduler_run_key(headers: Mapping[str, str]) -> str | None:
    """`job@schedule-time` from Cloud Scheduler's headers; None when either is missing."""
    lowered = {k.lower(): v for k, v in headers.items()}
    job = (lowered.get(JOB_HEADER) or "").strip()
    when = (lowered.get(SCHEDULE_HEADER) or "").strip()
    if not job or not when:
        return None
    return f"{job}@{when}"[:512]


class KeyUnavailableError(BackendError):
    """The exporter's Instantly key could not be read from its secret (missing secret, alias or
    version, access denied, Secret Manager unavailable). Names the secret, never a value."""

    def __init__(self, key_source: str, cause: BackendError) -> None:
        super().__init__(
            f"the Instantly key cannot be read from {key_source}: {cause}",
            retryable=cause.retryable,
        )
        # The Google API error the store chained: PermissionDenied carries HTTP code 403.
        self.denied = getattr(cause.__cause__, "code", None) == 403


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    permanent: bool
    message: str
    fields: Mapping[str, Any]


def describe_failure(error: GuardError, key_source: str) -> Failure:
    """What went wrong, whether retrying can help, and what a person should do about it."""
    if isinstance(error, ScopeError):
        return Failure(
            "missing_scope",
            True,
            f"the Instantly key from {key_source} lacks scope {REQUIRED_SCOPE} "
            f"(Instantly requires {', '.join(error.required) or REQUIRED_SCOPE}; the key has "
            f"{', '.join(error.found) or 'unknown scopes'}). Give the exporter a key with "
            f"{REQUIRED_SCOPE} (declare the managed secret with --scopes {REQUIRED_SCOPE} and "
            "rotate it).",
            {"required": list(error.required), "found": list(error.found)},
        )
    if isinstance(error, AuthenticationError):
        return Failure(
            "invalid_key",
            True,
            f"Instantly rejected the key from {key_source} (missing, invalid or revoked). "
            f"Store a valid key with {REQUIRED_SCOPE} there, or rotate the managed secret.",
            {},
        )
    if isinstance(error, PaymentRequiredError):
        return Failure(
            "no_paid_plan",
            True,
            "the Instantly workspace has no active paid plan; the API (and its audit log) "
            "needs one.",
            {},
        )
    if isinstance(error, PermissionDeniedError):
        return Failure(
            "permission_denied",
            True,
            f"Instantly refused the key from {key_source} access to the audit log: {error.message}",
            {},
        )
    if isinstance(error, InstantlyError):
        kind = "instantly_unavailable" if error.retryable else "instantly_rejected"
        return Failure(kind, not error.retryable, f"Instantly call failed: {error}", {})
    if isinstance(error, ConfigError):
        return Failure("config", True, str(error), {"problems": list(error.problems)})
    if isinstance(error, KeyUnavailableError):
        what = (
            "grant the function's service account roles/secretmanager.secretAccessor on it"
            if error.denied
            else "create it and point its alias current at an enabled version holding a key "
            f"with {REQUIRED_SCOPE} (or rotate the managed secret)"
        )
        return Failure(
            "key_unavailable",
            not error.retryable,
            f"{error}. "
            + (f"Retry later, or {what}." if error.retryable else f"{what[0].upper()}{what[1:]}."),
            {},
        )
    if isinstance(error, BackendError):
        kind = "backend_unavailable" if error.retryable else "backend_rejected"
        return Failure(kind, not error.retryable, str(error), {})
    return Failure("error", True, str(error), {})


def respond(summary: Summary, key_source: str) -> Response:
    """The one mapping from a run's outcome to the HTTP answer (see the module doc)."""
    body = summary.to_json()
    if summary.error is None:
        return Response(200, body)
    failure = describe_failure(summary.error, key_source)
    body["error"] = {"kind": failure.kind, "message": failure.message, **failure.fields}
    return Response(500 if failure.permanent else 503, body)


def build_failure_response(error: BuildFailedError) -> Response:
    """The answer while the service cannot be built (instantly_guard.lazy): 503 and Retry-After,
    for a configuration error too, so Scheduler's retry config tries again after a fix."""
    return Response(
        503,
        {"error": {"kind": error.kind, "message": error.reason, "problems": list(error.problems)}},
        unavailable_headers(error),
    )


class AuditExportService:
    """One instance per process: holds the Instantly client, the sink and the store."""

    def __init__(
        self,
        source: PageSource,
        sink: LogSink,
        store: CheckpointStore,
        options: ExportOptions,
        *,
        key_source: str,
        project: str | None = None,
        log_level: str = "INFO",
        clock: Callable[[], datetime] = utc_now,
        close: Callable[[], None] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.source, self.sink, self.store = source, sink, store
        self._state_dir = state_dir or Path(".instantly-guard") / "audit"
        self.log_level = log_level
        self.options = options
        self.key_source = key_source
        self._project = project
        self._clock = clock
        self._close = close

    def exporter(
        self,
        store: CheckpointStore | None = None,
        options: ExportOptions | None = None,
        progress: Callable[[Summary], None] | None = None,
    ) -> Exporter:
        """An exporter for one run; its read-ahead (one per run) fetches pages while the
        current ones are written."""
        options = options or self.options
        # Backfills list day windows side by side (audit/windows.py), each at most
        # WINDOW_PAGES pages ahead; pages are still handed over as one listing, in order, one
        # ahead of the one being written.
        windows = WindowedPageSource(
            self.source, today=lambda: self._clock().date(), window_pages=WINDOW_PAGES
        )
        return Exporter(
            ReadAheadSource(windows),
            self.sink,
            store or self.store,
            options,
            clock=self._clock,
            progress=progress,
        )

    def run(
        self, *, run_key: str | None = None, progress: Callable[[Summary], None] | None = None
    ) -> Summary:
        """One scheduled-style run against the stored checkpoint, logged."""
        summary = self.exporter(progress=progress).run(run_key=run_key)
        self._flush()
        self._log(summary)
        return summary

    def backfill(
        self,
        since: date,
        until: date | None = None,
        *,
        progress: Callable[[Summary], None] | None = None,
    ) -> Summary:
        """Export [since, until] (UTC days) without reading or moving the scheduled runs'
        checkpoint. Entries already exported collapse by insertId in Cloud Logging.

        The backfill keeps its own checkpoint under the state directory (one per since/until),
        so a backfill interrupted (Ctrl-C, a failure) resumes where it stopped when the same
        command is run again; it is removed once the backfill is complete.

        A complete backfill that reached the present (no `until`) on a deployment whose
        scheduled runs have no checkpoint yet seeds theirs with its own, when it started no
        later than their lookback would: the first scheduled run then goes on from where the
        backfill stopped instead of exporting the lookback a second time (Cloud Logging
        collapses duplicates in queries only; log-based metrics and sinks count both)."""
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        store = self.backfill_store(since, until)
        if store.read()[0] is None:
            store.write(Checkpoint.starting_at(start), 0)
        options = replace(self.options, time_budget=BACKFILL_BUDGET)
        summary = self.exporter(store, options, progress).run(until=until)
        self._flush()
        if summary.stopped_reason is StopReason.COMPLETE:
            if until is None:
                self._seed_schedule(store, start)
            store.remove()
        self._log(summary)
        return summary

    def _seed_schedule(self, backfill: CheckpointStore, start: datetime) -> None:
        """Give the scheduled runs the backfill's checkpoint when they have none and their
        lookback would not reach before `start` (else they would miss what lies between)."""
        done, _ = backfill.read()
        if done is None or start > self._clock() - self.options.lookback:
            return
        if self.store.read()[0] is not None:
            return  # a scheduled run came first: its checkpoint is not ours to move
        try:
            self.store.write(replace(done, runs=(), descent=None, sweep=None), 0)
        except ConflictError:
            return  # one was written just now: the same reasoning
        _log.info(
            "audit export: the scheduled runs' checkpoint starts where the backfill stopped",
            extra={"fields": {"checkpoint": self.store.describe()}},
        )

    def backfill_store(self, since: date, until: date | None) -> LocalCheckpointStore:
        end = until.isoformat() if until is not None else "now"
        return LocalCheckpointStore(self._state_dir / f"backfill-{since.isoformat()}-{end}.json")

    def handle(self, method: str, headers: Mapping[str, str]) -> Response:
        """An HTTP request from Cloud Scheduler (or a person) -> the response to send."""
        if method.upper() != "POST":
            return Response(
                405, {"error": {"kind": "method", "message": "use POST"}}, {"Allow": "POST"}
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        run_key = scheduler_run_key(lowered)
        with bind_request_context(lowered.get("x-cloud-trace-context"), self._project):
            summary = self.run(run_key=run_key)
        return respond(summary, self.key_source)

    def _flush(self) -> None:
        """Let the sink save what it holds for the run (the detections' state)."""
        flush = getattr(self.sink, "flush", None)
        if not callable(flush):
            return
        try:
            flush()
        except BackendError as exc:
            # The entries are exported; only the detections' latest state is not saved.
            _log.warning("audit export: detection state not saved: %s", exc)

    def _log(self, summary: Summary) -> None:
        fields = summary.to_json()
        if summary.watermark is not None:
            # How far behind Instantly the exported log is: the newest exported entry's age. A
            # log-based distribution metric reads it from this line (terraform/monitoring.tf).
            lag = self._clock() - summary.watermark
            fields["lag_seconds"] = max(0, round(lag.total_seconds()))
        if summary.beyond_retention:
            oldest = summary.oldest_beyond_retention
            _log.warning(
                "audit export: %d entries (the oldest dated %s) are older than the log bucket's "
                "retention (AUDIT_LOG_RETENTION, %d days) and were not written: Cloud Logging "
                "accepts such entries and stores none of them",
                summary.beyond_retention,
                oldest.isoformat() if oldest else "?",
                self.options.retention.days if self.options.retention else 0,
                extra={"fields": fields},
            )
        if summary.future_entries:
            _log.warning(
                "audit export: %d entries are dated more than a day ahead of this clock (clock "
                "skew?); Cloud Logging refuses those, so they were written with the export's "
                "time (the payload keeps Instantly's timestamp)",
                summary.future_entries,
                extra={"fields": fields},
            )
        if summary.stopped_reason is StopReason.BUSY and summary.blocked_by is not None:
            blocked = summary.blocked_by
            _log.warning(
                "audit export did nothing: run %s holds the checkpoint (started %s, last seen "
                "%s). If it was killed, its lease ends at %s and the next run then takes over.",
                blocked["run"],
                blocked["started_at"],
                blocked["last_seen_at"],
                blocked["lease_until"],
                extra={"fields": fields},
            )
            return
        if summary.error is None:
            level = (
                logging.WARNING if summary.stopped_reason is StopReason.LOST_RACE else logging.INFO
            )
            _log.log(
                level, "audit export %s", summary.stopped_reason.value, extra={"fields": fields}
            )
            return
        failure = describe_failure(summary.error, self.key_source)
        fields["error"] = {"kind": failure.kind, **failure.fields}
        _log.log(
            logging.ERROR if failure.permanent else logging.WARNING,
            "audit export failed: %s",
            failure.message,
            extra={"fields": fields},
        )

    def close(self) -> None:
        """Close the Instantly client and whatever connections the sink and the store hold."""
        if self._close is not None:
            self._close()
        for part in (self.sink, self.store):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()


# -- building from configuration -----------------------------------------------------------------


def _key_provider(settings: AuditSettings, secret_store: Any | None) -> KeyProvider:
    key: KeySource = settings.key
    if key.secret_name is not None:
        from instantly_guard.secrets.factory import open_store
        from instantly_guard.secrets.provider import secret_key_provider

        store = (
            secret_store
            if secret_store is not None
            else open_store(settings.common, project=key.secret_project)
        )
        inner = secret_key_provider(store, key.secret_name)
        source = key.describe()

        def provider(*, refresh: bool = False) -> Secret:
            try:
                return inner(refresh=refresh)
            except BackendError as exc:
                raise KeyUnavailableError(source, exc) from exc

        return provider
    if key.file is not None:
        path = Path(key.file)

        def fetch() -> Secret:
            try:
                return Secret(path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise BackendError(f"cannot read INSTANTLY_API_KEY_FILE: {exc.strerror}") from exc

        # Re-read at most once a minute, and at once after a bad-key 401 (a rotated mount).
        return CachedKey(fetch, ttl=60.0)
    if key.value is None:  # settings validation makes this unreachable
        raise ConfigError("no Instantly key configured")
    return StaticKey(key.value)


def _local_sink(settings: AuditSettings, log_name: str | None = None) -> LogSink:
    log_name = log_name or settings.log_name
    file_name = log_name.replace("/", "_") + ".jsonl"
    return JsonlSink(settings.common.state_dir / "audit" / file_name, log_name=log_name)


def findings_path(state_dir: Path, log_name: str = DEFAULT_FINDINGS_LOG) -> Path:
    """The local findings log (`instantly-guard findings` reads it)."""
    return state_dir / "audit" / (log_name.replace("/", "_") + ".jsonl")


def with_detections(
    settings: AuditSettings,
    sink: LogSink,
    findings_sink: LogSink | None,
    detection_store: StateStore | None,
    clock: Callable[[], datetime],
) -> LogSink:
    """The audit sink with the rule base evaluated on every batch (audit.detecting)."""
    from instantly_guard.audit.detecting import DetectingSink
    from instantly_guard.detections.detector import Detector

    detections = settings.detections
    gcp = settings.common.backend is Backend.GCP
    if findings_sink is None:
        findings_sink = (
            _gcp_sink(settings, detections.findings_log)
            if gcp
            else _local_sink(settings, detections.findings_log)
        )
    if detection_store is None:
        if gcp:
            from instantly_guard.audit.detection_state import GcsStateStore

            client = _storage_client(settings)
            object_name = settings.checkpoint_object.rsplit("/", 1)[0] + "/detections.json"
            detection_store = GcsStateStore(client, settings.checkpoint_bucket or "", object_name)
        else:
            detection_store = LocalStateStore(
                settings.common.state_dir / "audit" / "detections.json"
            )
    detector = Detector(detections.config, detection_store, clock=clock)
    return DetectingSink(sink, detector, findings_sink)


def _sealed_sink(settings: AuditSettings, *, gcp: bool) -> LogSink:
    """The default sink: the audit log, each batch sealed into the digest chain (a log of its
    own, `<log name>-chain`; the head beside the checkpoint). audit/integrity.py says why."""
    from instantly_guard.audit.integrity import chain_log_name
    from instantly_guard.audit.sinks.sealing import SealingSink

    chain = chain_log_name(settings.log_name)
    head = _chain_head(settings, gcp=gcp)
    if gcp:
        return SealingSink(_gcp_sink(settings), _gcp_sink(settings, chain), head)
    return SealingSink(_local_sink(settings), _local_sink(settings, chain), head)


def _chain_head(settings: AuditSettings, *, gcp: bool) -> ChainHead:
    """Beside the checkpoint: under the exporter's own prefix in the bucket (its IAM condition
    covers it), or GUARD_STATE_DIR/audit/chain-head.json."""
    import posixpath

    from instantly_guard.audit.chainhead import GcsChainHead, LocalChainHead

    if gcp:
        folder = posixpath.dirname(settings.checkpoint_object)
        name = posixpath.join(folder, "chain-head.json") if folder else "chain-head.json"
        return GcsChainHead(_storage_client(settings), settings.checkpoint_bucket or "", name)
    return LocalChainHead(settings.common.state_dir / "audit" / "chain-head.json")


def _anonymous_credentials() -> Any:
    """Credentials for a loopback stand-in: nothing to authenticate, nothing to leak."""
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def _gcp_sink(settings: AuditSettings, log_id: str | None = None) -> LogSink:
    from instantly_guard.audit.sinks.gcp import CloudLoggingSink

    return CloudLoggingSink(
        _logging_client(settings),
        project=settings.common.project or "",
        log_id=log_id or settings.log_name,
    )


def _logging_client(settings: AuditSettings) -> Any:
    from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
    from google.cloud.logging_v2.services.logging_service_v2.transports import (
        LoggingServiceV2GrpcTransport,
    )

    if settings.logging_emulator_host:
        import grpc

        channel = grpc.insecure_channel(settings.logging_emulator_host)
        transport = LoggingServiceV2GrpcTransport(
            channel=channel, credentials=_anonymous_credentials()
        )
        return LoggingServiceV2Client(transport=transport)
    return LoggingServiceV2Client()


def _storage_client(settings: AuditSettings) -> Any:
    from google.cloud.storage import Client as StorageClient

    if settings.storage_emulator_host:
        return StorageClient(
            project=settings.common.project,
            credentials=_anonymous_credentials(),
            client_options={"api_endpoint": settings.storage_emulator_host},
        )
    return StorageClient(project=settings.common.project)


def _gcs_store(settings: AuditSettings) -> CheckpointStore:
    from instantly_guard.audit.checkpoint.gcs import GcsCheckpointStore

    return GcsCheckpointStore(
        _storage_client(settings), settings.checkpoint_bucket or "", settings.checkpoint_object
    )


def verify_chain_from_env(
    env: Mapping[str, str], heads: Mapping[str, ChainHead] | None = None
) -> ChainReport:
    """Recompute the exported trail's digest chains (audit/integrity.py) where this environment
    exports it: the JSONL files under GUARD_STATE_DIR/audit, or the Cloud Logging log and its
    chain log with GUARD_BACKEND=gcp (needs logging.viewer), each writer's chain against its
    stored head: the export's here, the other writers' (the inventory's) in `heads`."""
    from instantly_guard.audit.integrity import EXPORT_WRITER, chain_log_name, verify_chain

    keyed = any(
        env.get(k) for k in ("AUDIT_API_KEY_SECRET", "INSTANTLY_API_KEY", "INSTANTLY_API_KEY_FILE")
    )
    # Verifying reads the log, not Instantly: no key is needed, so none is asked for.
    settings = AuditSettings.from_env(env if keyed else {**env, "INSTANTLY_API_KEY": "unused"})
    chain = chain_log_name(settings.log_name)
    gcp = settings.common.backend is Backend.GCP
    stored = {w: h.read()[0] for w, h in (heads or {}).items()}
    stored[EXPORT_WRITER] = _chain_head(settings, gcp=gcp).read()[0]
    if gcp:
        from instantly_guard.audit.sinks import gcp as gcp_sink

        client = _logging_client(settings)
        project = settings.common.project or ""
        return verify_chain(
            gcp_sink.read_entries(client, project, settings.log_name),
            gcp_sink.read_entries(client, project, chain),
            heads=stored,
        )
    folder = settings.common.state_dir / "audit"
    return verify_chain(
        read_entries(folder / (settings.log_name.replace("/", "_") + ".jsonl")),
        read_entries(folder / (chain.replace("/", "_") + ".jsonl")),
        heads=stored,
    )


def export_options(settings: AuditSettings) -> ExportOptions:
    gcp = settings.common.backend is Backend.GCP
    return ExportOptions(
        # Only Cloud Logging forgets: the local JSONL sink keeps everything.
        retention=settings.log_retention if gcp else None,
        lookback=settings.lookback,
        time_budget=settings.time_budget,
        overlap=settings.overlap,
        day_margin=settings.day_margin,
        # Cloud Storage takes about one write per second to one object. Writing less often only
        # widens what a crash makes the next run write again (collapsed by insertId).
        checkpoint_interval=timedelta(seconds=1),
    )


def build_service(
    env: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utc_now,
    sink: LogSink | None = None,
    store: CheckpointStore | None = None,
    secret_store: Any | None = None,
    client_options: Mapping[str, Any] | None = None,
    findings_sink: LogSink | None = None,
    detection_store: StateStore | None = None,
) -> AuditExportService:
    """Everything a run needs, from an environment mapping (os.environ when deployed, a dict in
    tests). Raises ConfigError listing every problem. Collaborators may be injected;
    `client_options` go to `InstantlyClient` (e.g. `transport`, `sleep`, `max_retries`).

    With AUDIT_DETECTIONS (the default) the sink evaluates the detection rules on every batch
    and writes findings to the findings log; an injected `sink` is wrapped only when a
    `findings_sink` is injected too (tests of the export alone see the bare sink)."""
    from instantly_guard.instantly.client import InstantlyClient
    from instantly_guard.instantly.ratelimit import RateLimiter

    settings = AuditSettings.from_env(env)
    gcp = settings.common.backend is Backend.GCP
    limiter = RateLimiter(settings.rate_per_second, settings.rate_per_minute)
    client = InstantlyClient(
        _key_provider(settings, secret_store),
        settings.common.api_base,
        **{"rate_limiter": limiter, "timeout": 30.0, **(client_options or {})},
    )
    detect = settings.detections.enabled and (sink is None or findings_sink is not None)
    if sink is None:
        sink = _sealed_sink(settings, gcp=gcp)
    if detect:
        sink = with_detections(settings, sink, findings_sink, detection_store, clock)
    if store is None:
        store = (
            _gcs_store(settings)
            if gcp
            else LocalCheckpointStore(settings.common.state_dir / "audit" / "checkpoint.json")
        )
    return AuditExportService(
        ClientPageSource(client),
        sink,
        store,
        export_options(settings),
        key_source=settings.key.describe(),
        project=settings.common.project,
        log_level=settings.common.log_level,
        clock=clock,
        close=client.close,
        state_dir=settings.common.state_dir / "audit",
    )
