"""The export's detection settings, read once at cold start with the audit export's:

AUDIT_DETECTIONS              evaluate the rules on every batch written (default true)
AUDIT_FINDINGS_LOG            log id of the findings (default instantly-guard-findings)
DETECT_MFA_FAILURES           failed MFA challenges of one user in one burst that make a
                              finding (default 3)
DETECT_MFA_BURST_GAP          failures (and exports) further apart are separate incidents
                              (default 24h)
DETECT_WEBHOOK_HOSTS          allowed webhook hosts, comma-separated fnmatch patterns; the
                              webhook-host rules stay silent without them
DETECT_LEAD_EXPORT_THRESHOLD  leads one user may export in one burst (default 1000)
DETECT_LEAD_EXPORT_WINDOW     gap that ends a burst of lead exports (default 24h)
DETECT_ROTATION_KEYS          ids or names of hand-made keys trusted to create and delete
                              keys until their first rotation (the check's rotation_keys)
DETECT_KEY_PREFIX             managed key names' prefix (default instantly-guard)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from instantly_guard.detections.model import DEFAULT_KEY_PREFIX, Config
from instantly_guard.settings import Reader

DEFAULT_FINDINGS_LOG = "instantly-guard-findings"
_LOG_ID = re.compile(r"^[A-Za-z0-9_.\-/]{1,512}$")


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    enabled: bool = True
    findings_log: str = DEFAULT_FINDINGS_LOG
    config: Config = field(default_factory=Config)

    @classmethod
    def read(cls, reader: Reader) -> DetectionSettings:
        log = reader.text("AUDIT_FINDINGS_LOG", DEFAULT_FINDINGS_LOG) or DEFAULT_FINDINGS_LOG
        if not _LOG_ID.fullmatch(log):
            reader.problems.append(
                f"AUDIT_FINDINGS_LOG={log!r}: letters, digits, '/', '_', '-', '.' only"
            )
        gap = reader.duration("DETECT_MFA_BURST_GAP", timedelta(hours=24))
        window = reader.duration("DETECT_LEAD_EXPORT_WINDOW", timedelta(hours=24))
        for name, value in (("DETECT_MFA_BURST_GAP", gap), ("DETECT_LEAD_EXPORT_WINDOW", window)):
            if not timedelta(minutes=1) <= value <= timedelta(days=30):
                reader.problems.append(f"{name} must be between 1m and 30d")
        return cls(
            enabled=reader.flag("AUDIT_DETECTIONS", True),
            findings_log=log,
            config=Config(
                mfa_failure_threshold=reader.integer("DETECT_MFA_FAILURES", 3, minimum=1),
                mfa_burst_gap=gap,
                webhook_allowed_hosts=reader.csv("DETECT_WEBHOOK_HOSTS"),
                lead_export_threshold=reader.integer(
                    "DETECT_LEAD_EXPORT_THRESHOLD", 1000, minimum=1
                ),
                lead_export_window=window,
                managed_key_prefix=reader.text("DETECT_KEY_PREFIX", DEFAULT_KEY_PREFIX)
                or DEFAULT_KEY_PREFIX,
                rotation_keys=reader.csv("DETECT_ROTATION_KEYS"),
            ),
        )
