"""Configuration of the audit export, read once at cold start from an environment mapping.

Besides `CommonSettings` (GUARD_BACKEND, GUARD_STATE_DIR, INSTANTLY_API_BASE, GOOGLE_CLOUD_PROJECT,
LOG_LEVEL, INSTANTLY_RATE_PER_SECOND / _PER_MINUTE):

    AUDIT_LOG_NAME           Cloud Logging log id the entries go to (default instantly-audit)
    AUDIT_CHECKPOINT_BUCKET  Cloud Storage bucket of the checkpoint (required with gcp)
    AUDIT_CHECKPOINT_OBJECT  object name of the checkpoint (default instantly-audit/checkpoint.json)
    AUDIT_LOOKBACK           how far back the first run starts (default 7d)
    AUDIT_TIME_BUDGET        a run stops starting work after this long (default 480s)
    AUDIT_OVERLAP            how far behind the newest exported entry late arrivals are still
                             caught (default 5m)
    AUDIT_DAY_MARGIN         whole days added on each side of every UTC day's query, because
                             Instantly's start_date/end_date timezone and end inclusivity are
                             undocumented (default 1: any UTC offset if end_date is inclusive;
                             2: an exclusive end_date too; 0: only if the API's days are UTC)
    AUDIT_RATE_SHARE         share of Instantly's workspace limit (100/s, 6,000/min) this export
                             may use (default 0.25; INSTANTLY_RATE_* still cap it)
    AUDIT_API_KEY_SECRET     secret holding the exporter's Instantly key (read at alias
                             `current`): a Secret Manager name `projects/P/secrets/S` or `S`;
                             with GUARD_BACKEND=local, a secret of the local store
    INSTANTLY_API_KEY[_FILE] the key itself instead (local runs, the CLI)
    AUDIT_DETECTIONS, AUDIT_FINDINGS_LOG, DETECT_*: the detections run on every batch
                             (`detections.settings`)
    LOGGING_EMULATOR_HOST    host:port of a Cloud Logging stand-in (loopback only; tests, bench)
    STORAGE_EMULATOR_HOST    http://host:port of a Cloud Storage stand-in (tests)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

from instantly_guard.detections.settings import DetectionSettings
from instantly_guard.secret import Secret
from instantly_guard.secrets.factory import parse_secret_reference
from instantly_guard.settings import Backend, CommonSettings, Reader

WORKSPACE_PER_SECOND: Final = 100.0
WORKSPACE_PER_MINUTE: Final = 6000.0
_LOG_ID = re.compile(r"^[A-Za-z0-9_.\-/]{1,512}$")
_LOOPBACK = ("127.", "localhost", "[::1]", "::1")


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the exporter's Instantly key comes from; `describe()` names it in error messages."""

    secret_name: str | None = None
    secret_project: str | None = None
    value: Secret | None = None
    file: str | None = None  # INSTANTLY_API_KEY_FILE: re-read on a bad-key 401 (a rotated mount)
    origin: str = ""

    def describe(self) -> str:
        if self.secret_name is not None:
            where = f"projects/{self.secret_project}/secrets/" if self.secret_project else ""
            variable = self.origin or "AUDIT_API_KEY_SECRET"
            return f"secret {where}{self.secret_name} (alias current, {variable})"
        return self.origin


@dataclass(frozen=True, slots=True)
class AuditSettings:
    common: CommonSettings
    log_name: str
    checkpoint_bucket: str | None
    checkpoint_object: str
    lookback: timedelta
    time_budget: timedelta
    overlap: timedelta
    day_margin: int
    log_retention: timedelta
    rate_share: float
    key: KeySource
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
    def read(cls, reader: Reader) -> AuditSettings:
        common = CommonSettings.read(reader)
        gcp = common.backend is Backend.GCP
        log_name = reader.text("AUDIT_LOG_NAME", "instantly-audit") or "instantly-audit"
        if not _LOG_ID.fullmatch(log_name):
            reader.problems.append(
                f"AUDIT_LOG_NAME={log_name!r}: letters, digits, '/', '_', '-', '.' only"
            )
        bucket = reader.text("AUDIT_CHECKPOINT_BUCKET")
        if gcp and not bucket:
            reader.problems.append("AUDIT_CHECKPOINT_BUCKET is required with GUARD_BACKEND=gcp")
        if gcp and not common.project:
            reader.problems.append("GOOGLE_CLOUD_PROJECT is required with GUARD_BACKEND=gcp")
        budget = reader.duration("AUDIT_TIME_BUDGET", timedelta(seconds=480))
        if not timedelta(seconds=10) <= budget <= timedelta(seconds=3600):
            reader.problems.append("AUDIT_TIME_BUDGET must be between 10s and 3600s")
        lookback = reader.duration("AUDIT_LOOKBACK", timedelta(days=7))
        if lookback <= timedelta(0):
            reader.problems.append("AUDIT_LOOKBACK must be positive")
        # The log bucket's retention (Cloud Logging's `_Default` bucket: 30 days). Entries older
        # than that are accepted by Cloud Logging and never stored.
        retention = reader.duration("AUDIT_LOG_RETENTION", timedelta(days=30))
        if retention < timedelta(days=1):
            reader.problems.append("AUDIT_LOG_RETENTION must be at least 1d")
        elif gcp and lookback > retention:
            reader.problems.append(
                f"AUDIT_LOOKBACK ({lookback.days}d) reaches past AUDIT_LOG_RETENTION "
                f"({retention.days}d): Cloud Logging would silently drop the oldest entries"
            )
        emulator = reader.text("LOGGING_EMULATOR_HOST")
        if emulator and not emulator.startswith(_LOOPBACK):
            reader.problems.append("LOGGING_EMULATOR_HOST must be a loopback host:port")
        storage_emulator = reader.text("STORAGE_EMULATOR_HOST")
        if storage_emulator and not (urlsplit(storage_emulator).hostname or "").startswith(
            ("127.", "localhost", "::1")
        ):
            reader.problems.append("STORAGE_EMULATOR_HOST must be a loopback http://host:port")
        return cls(
            common=common,
            log_name=log_name,
            checkpoint_bucket=bucket,
            checkpoint_object=reader.text(
                "AUDIT_CHECKPOINT_OBJECT", "instantly-audit/checkpoint.json"
            )
            or "instantly-audit/checkpoint.json",
            lookback=lookback,
            time_budget=budget,
            overlap=reader.duration("AUDIT_OVERLAP", timedelta(minutes=5)),
            day_margin=reader.integer("AUDIT_DAY_MARGIN", 1, minimum=0, maximum=7),
            log_retention=retention,
            rate_share=reader.number("AUDIT_RATE_SHARE", 0.25, minimum=0.01, maximum=1.0),
            key=_key_source(reader, common),
            logging_emulator_host=emulator,
            storage_emulator_host=storage_emulator,
            detections=DetectionSettings.read(reader),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuditSettings:
        reader = Reader(env)
        settings = cls.read(reader)
        reader.finish()
        return settings


def _key_source(
    reader: Reader, common: CommonSettings, key_variable: str = "AUDIT_API_KEY_SECRET"
) -> KeySource:
    """The key from the secret named by `key_variable`, or INSTANTLY_API_KEY(_FILE); the
    reconciler reads its own variable with the same rules."""
    resource = reader.text(key_variable)
    value = reader.secret("INSTANTLY_API_KEY")
    if resource and value is not None:
        reader.problems.append(f"set {key_variable} or INSTANTLY_API_KEY(_FILE), not both")
    if resource:
        reference = parse_secret_reference(resource)
        if reference is None:
            reader.problems.append(f"{key_variable} must be projects/PROJECT/secrets/NAME or NAME")
            return KeySource(origin=key_variable)
        return KeySource(
            secret_name=reference[0],
            secret_project=reference[1] or common.project,
            origin=key_variable,
        )
    if value is None:
        reader.problems.append(
            f"no Instantly key: set {key_variable} (deployed) or INSTANTLY_API_KEY(_FILE)"
        )
        return KeySource(origin="INSTANTLY_API_KEY")
    file = reader.text("INSTANTLY_API_KEY_FILE")
    origin = f"INSTANTLY_API_KEY_FILE={file}" if file else "INSTANTLY_API_KEY"
    return KeySource(value=value, file=file, origin=origin)
