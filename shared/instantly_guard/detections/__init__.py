"""The detection rule base: the audit-trail rules, written once, evaluated in two modes.

- window mode: `instantly-guard check` hands its audit window to the rules (`check.rules.audit`);
- continuous mode: the audit export hands every batch it writes to a `Detector`
  (`audit.detecting`), which keeps what windowed rules need between batches and runs
  (`DetectionState`) and reports each incident once (`Finding.insert_id`, the fired keys).

Each rule is a small function `(events, config) -> hits` beside its metadata (id, severity,
ATT&CK technique, fix) in `rules/`; its sample events are files under
`tests/detections/samples/<rule id>/{fires,does_not_fire}/`. See docs/detections.md.
"""

from __future__ import annotations

from instantly_guard.detections.base import DetectionRule, detection
from instantly_guard.detections.model import Config, Event, Finding, Hit, Severity
from instantly_guard.detections.registry import ALL_DETECTIONS, DETECTIONS_BY_ID

__all__ = [
    "ALL_DETECTIONS",
    "DETECTIONS_BY_ID",
    "Config",
    "DetectionRule",
    "Event",
    "Finding",
    "Hit",
    "Severity",
    "detection",
]
