"""What `verify` looks at: the deployment's collaborators, built once from configuration.

Environment (besides `CommonSettings`: GUARD_BACKEND, GUARD_STATE_DIR, GOOGLE_CLOUD_PROJECT,
INSTANTLY_API_BASE):

    VERIFY_RECEIVER_URL        the receiver (`terraform output -raw webhook_url`); required
    AUDIT_CHECKPOINT_BUCKET    the checkpoints bucket (`terraform output -raw checkpoint_bucket`;
                               required with gcp)
    AUDIT_CHECKPOINT_OBJECT    default audit-export/checkpoint.json (what Terraform deploys)
    RECONCILE_CHECKPOINT_BUCKET  default AUDIT_CHECKPOINT_BUCKET (Terraform uses one bucket)
    RECONCILE_CHECKPOINT_OBJECT  default reconcile/checkpoint.json (Terraform's default)
    VERIFY_EXPORT_MAX_AGE      the last export run must be newer (default 30m: 6 runs of the
                               default */5 schedule)
    VERIFY_RECONCILE_MAX_AGE   the same for reconcile (default 1h: 6 runs of */10)
    VERIFY_ROTATION_SLACK      how far past its period a secret may go unrotated (default 1d)
    INVENTORY_SNAPSHOT_OBJECT  default inventory/snapshot.bin (Terraform's; its chain head is
                               beside it, in INVENTORY_SNAPSHOT_BUCKET or AUDIT_CHECKPOINT_BUCKET)
    AUDIT_LOG_NAME             default instantly-audit (the exported log; its seals in <log>-chain)
    STORAGE_EMULATOR_HOST      a Cloud Storage stand-in (tests)
    LOGGING_EMULATOR_HOST      a Cloud Logging stand-in (tests)

With `local`, the checkpoints and the exported log are the local stack's files under
GUARD_STATE_DIR. With `gcp`, the audit chain is read from Cloud Logging (roles/logging.viewer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from instantly_guard.audit.checkpoint.base import CheckpointStore
from instantly_guard.audit.checkpoint.local import LocalCheckpointStore
from instantly_guard.audit.integrity import ChainReport
from instantly_guard.errors import BackendError
from instantly_guard.reconcile import checkpoint as reconcile_checkpoint
from instantly_guard.rotation.admin import ClientFactory
from instantly_guard.secrets.base import SecretStore
from instantly_guard.settings import Backend, CommonSettings, Reader

Post = Callable[[str, bytes, Mapping[str, str]], int | None]
"""POST a body with headers to a URL: the HTTP status, or None when nothing answered."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def http_post(url: str, body: bytes, headers: Mapping[str, str]) -> int | None:
    import httpx

    try:
        return httpx.post(url, content=body, headers=dict(headers), timeout=15.0).status_code
    except httpx.TransportError:
        return None


@dataclass(frozen=True, slots=True)
class Deployment:
    """Everything the probes read. Nothing here writes (the forged delivery is refused, and
    Instantly's test delivery is what connecting did already)."""

    store: SecretStore
    clients: ClientFactory
    receiver_url: str
    export_checkpoint: CheckpointStore
    reconcile_checkpoint: CheckpointStore
    export_max_age: timedelta = timedelta(minutes=30)
    reconcile_max_age: timedelta = timedelta(hours=1)
    rotation_slack: timedelta = timedelta(days=1)
    post: Post = http_post
    now: Callable[[], datetime] = _utc_now
    audit_chain: Callable[[], ChainReport] | None = None
    """Recompute the exported trail's digest chains (`audit.service.verify_chain_from_env`);
    None: not checked."""
    audit_log: str = "instantly-audit"


def build_deployment(
    env: Mapping[str, str],
    *,
    receiver_url: str | None = None,
    store: SecretStore | None = None,
    clients: ClientFactory | None = None,
    storage_client: Any | None = None,
    **options: Any,
) -> Deployment:
    """A `Deployment` from an environment mapping; collaborators may be injected (tests pass
    the Secret Manager stand-in's store and a Cloud Storage client on its stand-in). Raises
    ConfigError listing every problem."""
    from instantly_guard.rotation.builder import client_factory
    from instantly_guard.secrets.factory import open_store

    reader = Reader(env)
    common = CommonSettings.read(reader)
    gcp = common.backend is Backend.GCP
    if gcp and not common.project:
        reader.problems.append("GOOGLE_CLOUD_PROJECT is required with GUARD_BACKEND=gcp")
    url = receiver_url or reader.text("VERIFY_RECEIVER_URL")
    if not url:
        reader.problems.append(
            "the receiver URL is required: --receiver-url or VERIFY_RECEIVER_URL "
            "(terraform -chdir=terraform output -raw webhook_url)"
        )
    audit_bucket = reader.text("AUDIT_CHECKPOINT_BUCKET")
    audit_object = reader.text("AUDIT_CHECKPOINT_OBJECT", "audit-export/checkpoint.json")
    reconcile_bucket = reader.text("RECONCILE_CHECKPOINT_BUCKET") or audit_bucket
    reconcile_object = reader.text("RECONCILE_CHECKPOINT_OBJECT", "reconcile/checkpoint.json")
    if gcp and not audit_bucket:
        reader.problems.append(
            "AUDIT_CHECKPOINT_BUCKET is required with GUARD_BACKEND=gcp "
            "(terraform -chdir=terraform output -raw checkpoint_bucket)"
        )
    export_max_age = reader.duration("VERIFY_EXPORT_MAX_AGE", timedelta(minutes=30))
    reconcile_max_age = reader.duration("VERIFY_RECONCILE_MAX_AGE", timedelta(hours=1))
    slack = reader.duration("VERIFY_ROTATION_SLACK", timedelta(days=1))
    emulator = reader.text("STORAGE_EMULATOR_HOST")
    inventory_object = reader.text("INVENTORY_SNAPSHOT_OBJECT", "inventory/snapshot.bin")
    audit_log = reader.text("AUDIT_LOG_NAME", "instantly-audit") or "instantly-audit"
    reader.finish()

    if gcp:
        from instantly_guard.audit.checkpoint.gcs import GcsCheckpointStore

        gcs = storage_client or _storage_client(common.project, emulator)
        export: CheckpointStore = GcsCheckpointStore(gcs, audit_bucket or "", audit_object or "")
        reconcile = reconcile_checkpoint.gcs_store(
            gcs, reconcile_bucket or "", reconcile_object or ""
        )
    else:
        gcs = None
        export = LocalCheckpointStore(common.state_dir / "audit" / "checkpoint.json")
        reconcile = reconcile_checkpoint.local_store(common.state_dir)
    chain_env = {
        **env,
        "AUDIT_CHECKPOINT_OBJECT": audit_object or "",
        "INVENTORY_SNAPSHOT_OBJECT": inventory_object or "",
    }

    def audit_chain() -> ChainReport:
        from google.auth.exceptions import GoogleAuthError

        from instantly_guard.audit.integrity import INVENTORY_WRITER
        from instantly_guard.audit.service import verify_chain_from_env
        from instantly_guard.inventory.service import chain_head_from_env

        try:
            inventory = chain_head_from_env(chain_env, storage_client=gcs)
            return verify_chain_from_env(chain_env, {INVENTORY_WRITER: inventory})
        except GoogleAuthError as exc:
            # No credentials to read the trail with: a finding about this machine, not a crash.
            raise BackendError(
                f"no Google credentials to read the audit trail: {exc}", retryable=False
            ) from exc

    options.setdefault("audit_chain", audit_chain)
    options.setdefault("audit_log", audit_log)
    return Deployment(
        store=store if store is not None else open_store(common),
        clients=clients if clients is not None else client_factory(common),
        receiver_url=url or "",
        export_checkpoint=export,
        reconcile_checkpoint=reconcile,
        export_max_age=export_max_age,
        reconcile_max_age=reconcile_max_age,
        rotation_slack=slack,
        **options,
    )


def _storage_client(project: str | None, emulator: str | None) -> Any:
    from google.cloud.storage import Client as StorageClient

    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return StorageClient(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": emulator},
        )
    return StorageClient(project=project)
