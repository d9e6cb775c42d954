"""Configuration of the inventory, read once at cold start from an environment mapping.

Besides `CommonSettings` (GUARD_BACKEND, GUARD_STATE_DIR, INSTANTLY_API_BASE, GOOGLE_CLOUD_PROJECT,
LOG_LEVEL, INSTANTLY_RATE_PER_SECOND / _PER_MINUTE):

    INVENTORY_API_KEY_SECRET     secret holding the inventory's read-only Instantly key (alias
                                 `current`), `projects/P/secrets/S` or `S`; or
                                 INSTANTLY_API_KEY[_FILE]. Scopes: the posture check's
    INVENTORY_SNAPSHOT_BUCKET    Cloud Storage bucket of the snapshot (required with gcp)
    INVENTORY_SNAPSHOT_OBJECT    its object (default instantly-inventory/snapshot.bin)
    INVENTORY_RATE_SHARE         share of Instantly's workspace limit this run may use
                                 (default 0.1; INSTANTLY_RATE_* still cap it)
    AUDIT_LOG_NAME               the exported audit log the entries join (default
                                 instantly-audit): the same log as Instantly's own entries
    AUDIT_DETECTIONS             evaluate the `inventory.*` detection rules on the change entries
                                 written (default true)
    AUDIT_FINDINGS_LOG           log id of their findings (default instantly-guard-findings)
    DETECT_WEBHOOK_HOSTS         allowed webhook hosts, comma-separated fnmatch patterns (the
                                 webhook-target rule is silent without them). These, and
                                 the other DETECT_*, are read with the export's names,
                                 defaults and checks (`detections.settings`)
    LOGGING_EMULATOR_HOST        host:port of a Cloud Logging stand-in (loopback only)
    STORAGE_EMULATOR_HOST        http://host:port of a Cloud Storage stand-in (tests)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from instantly_guard.audit.settings import (
    WORKSPACE_PER_MINUTE,
    WORKSPACE_PER_SECOND,
    KeySource,
)
from instantly_guard.audit.settings import _key_source as key_source
from instantly_guard.detections.settings import DetectionSettings
from instantly_guard.settings import Backend, CommonSettings, Reader

_LOG_ID: Final = re.compile(r"^[A-Za-z0-9_.\-/]{1,512}$")
_LOOPBACK: Final = ("127.", "localhost", "[::1]", "::1", "http://127.", "http://localhost")
DEFAULT_OBJECT: Final = "instantly-inventory/snapshot.bin"


@dataclass(frozen=True, slots=True)
class InventorySettings:
    common: CommonSettings
    key: KeySource
    log_name: str
    snapshot_bucket: str | None
    snapshot_object: str
    rate_share: float
    logging_emulator_host: str | None
    storage_emulator_host: str | None
    detections: DetectionSettings = field(default_factory=DetectionSettings)

    @property
    def rate_per_second(self) -> float:
        return min(self.common.rate_per_second, WORKSPACE_PER_SECOND * self.rate_share)

    @property
    def rate_per_minute(self) -> float:
        return min(float(self.common.rate_per_minute), WORKSPACE_PER_MINUTE * self.rate_share)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> InventorySettings:
        reader = Reader(env)
        common = CommonSettings.read(reader)
        gcp = common.backend is Backend.GCP
        log_name = reader.text("AUDIT_LOG_NAME", "instantly-audit") or "instantly-audit"
        if not _LOG_ID.fullmatch(log_name):
            reader.problems.append(
                f"AUDIT_LOG_NAME={log_name!r}: letters, digits, '/', '_', '-', '.' only"
            )
        bucket = reader.text("INVENTORY_SNAPSHOT_BUCKET")
        if gcp and not bucket:
            reader.problems.append("INVENTORY_SNAPSHOT_BUCKET is required with GUARD_BACKEND=gcp")
        if gcp and not common.project:
            reader.problems.append("GOOGLE_CLOUD_PROJECT is required with GUARD_BACKEND=gcp")
        logging_emulator = reader.text("LOGGING_EMULATOR_HOST")
        storage_emulator = reader.text("STORAGE_EMULATOR_HOST")
        for name, value in (
            ("LOGGING_EMULATOR_HOST", logging_emulator),
            ("STORAGE_EMULATOR_HOST", storage_emulator),
        ):
            if value and not value.startswith(_LOOPBACK):
                reader.problems.append(f"{name} must be a loopback address")
        settings = cls(
            common=common,
            key=key_source(reader, common, "INVENTORY_API_KEY_SECRET"),
            log_name=log_name,
            snapshot_bucket=bucket,
            snapshot_object=reader.text("INVENTORY_SNAPSHOT_OBJECT", DEFAULT_OBJECT)
            or DEFAULT_OBJECT,
            rate_share=reader.number("INVENTORY_RATE_SHARE", 0.1, minimum=0.01, maximum=1.0),
            logging_emulator_host=logging_emulator,
            storage_emulator_host=storage_emulator,
            detections=DetectionSettings.read(reader),
        )
        reader.finish()
        return settings
