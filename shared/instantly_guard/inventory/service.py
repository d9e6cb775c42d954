"""The inventory as a service: collaborators built once from configuration, one run per request,
and the one place where a run's outcome becomes an HTTP status.

    200  the run ended as planned: baseline, changes written, nothing changed, or superseded by an
         overlapping run (its entries collapse with that run's)
    500  a permanent problem a person must fix: a missing scope, an invalid key, no paid plan, a
         snapshot of another workspace or unreadable
    503  a transient failure (Instantly, Cloud Logging or Cloud Storage unavailable): nothing was
         stored, the next run (or Scheduler's retry) finds the same differences. Also, with
         Retry-After, while the service cannot be built (`instantly_guard.lazy`)
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from instantly_guard.audit.chainhead import ChainHead
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.errors import (
    ConfigError,
    GuardError,
)
from instantly_guard.instantly.keys import KeyProvider, StaticKey
from instantly_guard.inventory.findings import FindingsSink, inventory_detector
from instantly_guard.inventory.run import ClientReader, Inventory, RunReport, utc_now
from instantly_guard.inventory.settings import DEFAULT_OBJECT, InventorySettings
from instantly_guard.inventory.stores import GcsSnapshotStore, LocalSnapshotStore, SnapshotStore
from instantly_guard.lazy import (
    BuildFailedError,
    Response,
    classify_run_error,
    unavailable_headers,
)
from instantly_guard.logs import bind_request_context
from instantly_guard.settings import Backend, CommonSettings, Reader

_log = logging.getLogger("instantly_guard.inventory")

REQUIRED_SCOPES = (
    "api_keys:read",
    "block_list_entries:read",
    "workspace_members:read",
    "workspaces:read",
)
LOCAL_SNAPSHOT = ("inventory", "snapshot.bin")
CHAIN_HEAD = "chain-head.json"


def _failure(error: GuardError) -> tuple[bool, str, str]:
    """(permanent, kind, what to do) for a run's error."""
    return classify_run_error(
        error, key="the inventory's", needs=f"{', '.join(REQUIRED_SCOPES)} (profile posture_check)"
    )


def respond(report: RunReport) -> Response:
    body = report.to_json()
    if report.error is None:
        return Response(200, body)
    permanent, kind, message = _failure(report.error)
    body["error"] = {"kind": kind, "message": message}
    return Response(500 if permanent else 503, body)


class InventoryService:
    """One per process: holds the Instantly client, the sink and the snapshot store."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        project: str | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.inventory = inventory
        self._project = project
        self._close = close

    def run(self) -> RunReport:
        sink = self.inventory.sink
        before = sink.findings_written if isinstance(sink, FindingsSink) else 0
        report = self.inventory.run()
        if isinstance(sink, FindingsSink):
            report.findings = sink.findings_written - before
        fields = report.to_json()
        if report.error is not None:
            permanent, kind, message = _failure(report.error)
            fields["error"] = {"kind": kind}
            level = logging.ERROR if permanent else logging.WARNING
            _log.log(level, "inventory failed: %s", message, extra={"fields": fields})
        else:
            _log.info("inventory %s", report.outcome, extra={"fields": fields})
        return report

    def handle(self, method: str, headers: Mapping[str, str]) -> Response:
        if method.upper() != "POST":
            return Response(
                405, {"error": {"kind": "method", "message": "use POST"}}, {"Allow": "POST"}
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        with bind_request_context(lowered.get("x-cloud-trace-context"), self._project):
            report = self.run()
        return respond(report)

    def close(self) -> None:
        if self._close is not None:
            self._close()


# -- building from configuration -----------------------------------------------------------------


def _key_provider(settings: InventorySettings) -> KeyProvider:
    key = settings.key
    if key.secret_name is not None:
        from instantly_guard.secrets.factory import open_store
        from instantly_guard.secrets.provider import secret_key_provider

        store = open_store(settings.common, project=key.secret_project)
        return secret_key_provider(store, key.secret_name)
    if key.value is None:  # settings validation makes this unreachable
        raise ConfigError("no Instantly key configured")
    return StaticKey(key.value)


def _anonymous_credentials() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def local_sink(state_dir: Path, log_name: str = "instantly-audit") -> JsonlSink:
    """The audit export's own JSONL file: inventory entries join Instantly's there too."""
    return JsonlSink(
        state_dir / "audit" / (log_name.replace("/", "_") + ".jsonl"), log_name=log_name
    )


def _sink(settings: InventorySettings, log_id: str) -> LogSink:
    """The log `log_id`: Cloud Logging when deployed, else its JSONL file beside the export's."""
    if settings.common.backend is not Backend.GCP:
        return local_sink(settings.common.state_dir, log_id)
    from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
    from google.cloud.logging_v2.services.logging_service_v2.transports import (
        LoggingServiceV2GrpcTransport,
    )

    from instantly_guard.audit.sinks.gcp import CloudLoggingSink

    if settings.logging_emulator_host:
        import grpc

        transport = LoggingServiceV2GrpcTransport(
            channel=grpc.insecure_channel(settings.logging_emulator_host),
            credentials=_anonymous_credentials(),
        )
        client = LoggingServiceV2Client(transport=transport)
    else:
        client = LoggingServiceV2Client()
    return CloudLoggingSink(client, project=settings.common.project or "", log_id=log_id)


def _storage_client(settings: InventorySettings) -> Any:
    from google.cloud.storage import Client as StorageClient

    if settings.storage_emulator_host:
        return StorageClient(
            project=settings.common.project,
            credentials=_anonymous_credentials(),
            client_options={"api_endpoint": settings.storage_emulator_host},
        )
    return StorageClient(project=settings.common.project)


def _store(settings: InventorySettings) -> SnapshotStore:
    if settings.common.backend is not Backend.GCP:
        return LocalSnapshotStore(settings.common.state_dir.joinpath(*LOCAL_SNAPSHOT))
    return GcsSnapshotStore(
        _storage_client(settings), settings.snapshot_bucket or "", settings.snapshot_object
    )


def chain_head(
    backend: Backend,
    state_dir: Path,
    *,
    storage_client: Any = None,
    bucket: str = "",
    snapshot_object: str = "",
) -> ChainHead:
    """The inventory's own audit chain head (audit/integrity.py), beside its snapshot: under
    the snapshot's prefix in the bucket (its IAM condition covers nothing else), or
    GUARD_STATE_DIR/inventory/chain-head.json. The export keeps its own beside its checkpoint."""
    from instantly_guard.audit.chainhead import GcsChainHead, LocalChainHead

    if backend is not Backend.GCP:
        return LocalChainHead(state_dir.joinpath(LOCAL_SNAPSHOT[0], CHAIN_HEAD))
    folder = posixpath.dirname(snapshot_object)
    name = posixpath.join(folder, CHAIN_HEAD) if folder else CHAIN_HEAD
    return GcsChainHead(storage_client, bucket, name)


def chain_head_from_env(
    env: Mapping[str, str], *, storage_client: Any = None, default_object: str = DEFAULT_OBJECT
) -> ChainHead:
    """The inventory's chain head for a reader of the chain (`verify`, `export-audit
    --verify-chain`): no key asked for. The bucket is INVENTORY_SNAPSHOT_BUCKET, else
    AUDIT_CHECKPOINT_BUCKET (Terraform puts the snapshot in the checkpoints bucket)."""
    reader = Reader(env)
    common = CommonSettings.read(reader)
    bucket = reader.text("INVENTORY_SNAPSHOT_BUCKET") or reader.text("AUDIT_CHECKPOINT_BUCKET")
    snapshot_object = reader.text("INVENTORY_SNAPSHOT_OBJECT", default_object) or default_object
    emulator = reader.text("STORAGE_EMULATOR_HOST")
    reader.finish()
    gcp = common.backend is Backend.GCP
    if gcp and storage_client is None:
        from google.cloud.storage import Client as StorageClient

        storage_client = (
            StorageClient(
                project=common.project,
                credentials=_anonymous_credentials(),
                client_options={"api_endpoint": emulator},
            )
            if emulator
            else StorageClient(project=common.project)
        )
    return chain_head(
        common.backend,
        common.state_dir,
        storage_client=storage_client,
        bucket=bucket or "",
        snapshot_object=snapshot_object,
    )


def _sealed_sink(settings: InventorySettings) -> LogSink:
    """The audit log, each batch of change entries sealed into the inventory's own chain (the
    export seals its batches into another: two writers, no race), seals in `<log>-chain`."""
    from instantly_guard.audit.integrity import INVENTORY_WRITER, chain_log_name
    from instantly_guard.audit.sinks.sealing import SealingSink

    gcp = settings.common.backend is Backend.GCP
    head = chain_head(
        settings.common.backend,
        settings.common.state_dir,
        storage_client=_storage_client(settings) if gcp else None,
        bucket=settings.snapshot_bucket or "",
        snapshot_object=settings.snapshot_object,
    )
    return SealingSink(
        _sink(settings, settings.log_name),
        _sink(settings, chain_log_name(settings.log_name)),
        head,
        writer=INVENTORY_WRITER,
    )


def build_service(
    env: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utc_now,
    sink: LogSink | None = None,
    store: SnapshotStore | None = None,
    client_options: Mapping[str, Any] | None = None,
    findings_sink: LogSink | None = None,
) -> InventoryService:
    """Everything a run needs, from an environment mapping. Raises ConfigError listing every
    problem. Collaborators may be injected (tests).

    With AUDIT_DETECTIONS (the default) the change entries go through the `inventory.*` rules
    and their findings to the findings log (`inventory.findings`); as in the export, an injected
    `sink` is wrapped only when a `findings_sink` is injected too."""
    from instantly_guard.instantly.client import InstantlyClient
    from instantly_guard.instantly.ratelimit import RateLimiter

    settings = InventorySettings.from_env(env)
    limiter = RateLimiter(settings.rate_per_second, settings.rate_per_minute)
    client = InstantlyClient(
        _key_provider(settings),
        settings.common.api_base,
        **{"rate_limiter": limiter, "timeout": 30.0, **(client_options or {})},
    )
    detect = settings.detections.enabled and (sink is None or findings_sink is not None)
    sink = sink or _sealed_sink(settings)
    if detect:
        detector = inventory_detector(settings.detections.config, clock=clock)
        findings = findings_sink or _sink(settings, settings.detections.findings_log)
        sink = FindingsSink(sink, detector, findings)
    store = store or _store(settings)
    inventory = Inventory(ClientReader(client), sink, store, clock=clock)

    def close() -> None:
        client.close()
        for part in (sink, store):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()

    return InventoryService(inventory, project=settings.common.project, close=close)


def build_failure_response(error: BuildFailedError) -> Response:
    """The answer while the service cannot be built: 503 and Retry-After."""
    return Response(
        503,
        {"error": {"kind": error.kind, "message": error.reason, "problems": list(error.problems)}},
        unavailable_headers(error),
    )
