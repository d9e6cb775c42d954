"""The inventory's change entries through the detection rule base (`inventory.*` rules).

`FindingsSink.write(batch)` writes the change entries to the audit log first, then evaluates the
rules that read inventory changes over that batch alone (`detections.Detector`, a fresh
`DetectionState` per batch) and writes each hit to the findings log with the export's
serialisation (`audit.detecting.finding_entry`), so a finding never names an entry the log lacks.

Why no state object (docs/inventory.md, "Findings"): every rule that reads inventory changes rests
on one entry (`lookback` zero, enforced here), and its incident is that entry's insertId. A change
entry is written again only with the same insertId and timestamp (a rerun after a crash before the
snapshot is stored, an overlapping run); its finding then gets the same insertId (rule + entry)
and the same timestamp (the entry's, not the run's clock), and Cloud Logging collapses it like
the entry itself. The export's `detections.json` would add a second writer racing the export; an
object of our own would hold nothing a rule needs.

A failure to write findings raises `BackendError`: the run fails before its snapshot is stored, and
the next run writes the same entries and findings again. A defect in a rule is logged at ERROR and
does not stop the inventory (as in the export).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from instantly_guard.audit.detecting import finding_entry, log_finding
from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.detections.base import DetectionRule
from instantly_guard.detections.detector import Detector
from instantly_guard.detections.model import Config
from instantly_guard.detections.registry import ALL_DETECTIONS
from instantly_guard.detections.state import DetectionState, MemoryStateStore
from instantly_guard.errors import ConfigError
from instantly_guard.inventory.changes import SOURCE

_log = logging.getLogger("instantly_guard.inventory")

INVENTORY_RULES: tuple[DetectionRule, ...] = tuple(r for r in ALL_DETECTIONS if r.changes)
"""The rules that read inventory change entries."""


def inventory_detector(
    config: Config,
    rules: Sequence[DetectionRule] = INVENTORY_RULES,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Detector:
    """A detector for per-entry rules only: a windowed rule would need the state this design
    leaves out, so one is refused rather than silently evaluated one batch at a time."""
    windowed = [r.id for r in rules if r.lookback]
    if windowed:
        raise ConfigError(f"inventory detections are per entry; {windowed} look back")
    # The store is never read: `FindingsSink` hands `evaluate` an empty state per batch.
    return Detector(config, MemoryStateStore(), rules, clock=clock, mode="inventory")


class FindingsSink:
    """`inner` (the audit log) with the inventory rules; `findings` is the findings log's sink."""

    def __init__(self, inner: LogSink, detector: Detector, findings: LogSink) -> None:
        self._inner = inner
        self._detector = detector
        self._findings = findings
        self.findings_written = 0

    def write(self, entries: Sequence[ExportEntry]) -> None:
        self._inner.write(entries)
        picked: list[tuple[str, Mapping[str, Any], datetime]] = []
        for entry in entries:
            if entry.labels.get("source") != SOURCE:
                continue
            payload = json.loads(entry.payload_json)  # ours, written just above
            picked.append((entry.insert_id, payload, entry.timestamp))
        if not picked:
            return
        try:
            found, _ = self._detector.evaluate(picked, DetectionState())
        except Exception:  # a defect in a rule must not stop the inventory
            _log.exception("detections failed on a batch of %d change entries", len(entries))
            return
        if not found:
            return
        # The change entry's own timestamp (the previous snapshot's time), not the finding's
        # first_at (the run's observed_at): a rerun then writes an identical entry.
        logged_at = {insert_id: timestamp for insert_id, _, timestamp in picked}
        written = [
            finding_entry(f)._replace(timestamp=logged_at.get(f.hit.incident, f.hit.first_at))
            for f in found
        ]
        self._findings.write(written)  # BackendError fails the run before the snapshot
        self.findings_written += len(found)
        for finding in found:
            log_finding(finding)

    def describe(self) -> str:
        return f"{self._inner.describe()} (findings: {self._findings.describe()})"

    def close(self) -> None:
        for part in (self._inner, self._findings):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()
