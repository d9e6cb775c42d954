"""The export's hook into the detection rule base: a `LogSink` around the audit sink.

`DetectingSink.write(batch)`:

1. picks the entries some rule reads, by their labels (`activity`, `source=inventory`): the
   payloads of the others are never parsed, so a large export pays almost nothing;
2. labels every key creation and deletion (37, 38) `managed_rotation=true|false`, so any query
   tells a rotation's own changes from the rest (`labels.managed_rotation="false"`);
3. writes the batch to the audit sink, and only then
4. runs the rules over it and the window the state kept, writes the new findings to the
   findings log (`instantly-guard-findings`, through the same sink machinery), and saves the
   state: at most once per `save_interval` (Cloud Storage takes about one write per second to
   one object, and a catch-up writes batches faster), and at the end of the run (`flush`, which
   the service calls). The state is read once per run.

A failure in 3 or 4 raises `BackendError` like any sink: the exporter keeps its checkpoint
before the batch and writes it again on the next run, whose evaluation finds the same incidents
(their dedupe keys are not saved until their findings are written; stable insertIds collapse a
finding written twice). A process killed between two saves loses at most the last second's
state: a finding then fires again (collapsed by its insertId) or a burst restarts. A defect in a
rule is logged at ERROR and does not stop the export.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from instantly_guard.audit.entries import ENVELOPE_BYTES, ExportEntry
from instantly_guard.audit.severity import activity
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.detections.detector import Detector, dumps
from instantly_guard.detections.model import Finding
from instantly_guard.detections.rules.keys import KEY_CHANGES
from instantly_guard.detections.state import DetectionState
from instantly_guard.errors import BackendError

_log = logging.getLogger("instantly_guard.audit")

FINDINGS_LOG = "instantly-guard-findings"
MANAGED_LABEL = "managed_rotation"
_KEY_CHANGE_NAMES = frozenset(activity(t).name for t in KEY_CHANGES)


def finding_entry(finding: Finding) -> ExportEntry:
    """A finding as a log entry: insertId from its dedupe key and the time of its first entry,
    so a finding written again collapses; labels for alert filters."""
    text = dumps(finding)
    labels = MappingProxyType(
        {
            "rule": finding.rule_id,
            "severity": finding.severity.value,
            "technique": finding.technique or "none",
        }
    )
    return ExportEntry(
        finding.insert_id,
        finding.hit.first_at,
        finding.severity.log_severity,
        labels,
        text,
        len(text.encode()) + ENVELOPE_BYTES,
    )


def log_finding(finding: Finding) -> None:
    """One WARNING line per finding written, in the function's own log too."""
    _log.warning(
        "finding %s (%s): %s",
        finding.rule_id,
        finding.severity.value,
        finding.hit.message,
        extra={"fields": {"finding": finding.to_json()}},
    )


class DetectingSink:
    """`inner` with detections: see the module doc. `findings` is the findings log's sink."""

    def __init__(
        self,
        inner: LogSink,
        detector: Detector,
        findings: LogSink,
        *,
        save_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._detector = detector
        self._findings = findings
        self._names = frozenset(activity(t).name for t in detector.activities)
        self._save_interval = save_interval
        self._monotonic = monotonic
        self._state: DetectionState | None = None
        self._saved_at: float | None = None
        self._dirty = False
        self.findings_written = 0

    def _candidate(self, entry: ExportEntry) -> bool:
        labels = entry.labels
        return labels.get("activity") in self._names or labels.get("source") == "inventory"

    def write(self, entries: Sequence[ExportEntry]) -> None:
        picked: list[tuple[str, Mapping[str, Any], Any]] = []
        for entry in entries:
            if self._candidate(entry):
                payload = _payload(entry)
                if payload is not None and self._detector.relevant(entry.insert_id, payload):
                    picked.append((entry.insert_id, payload, entry.timestamp))
        if not picked:
            self._inner.write(entries)
            return
        if self._state is None:
            self._state = self._detector.store.load()
        state = self._state
        events = self._detector.events(picked)
        managed = self._detector.managed_rotations(events, state)
        self._inner.write([_labelled(e, managed) for e in entries])
        try:
            findings, state = self._detector.evaluate(picked, state)
        except BackendError:
            self._state = None  # read it again: what this batch added was not written
            raise
        except Exception:  # a defect in a rule must not stop the audit trail's export
            _log.exception("detections failed on a batch of %d entries", len(entries))
            self._state = None
            return
        if findings:
            try:
                self._findings.write([finding_entry(f) for f in findings])
            except BackendError:
                self._state = None  # these findings' keys must not be saved as fired
                raise
            self.findings_written += len(findings)
            for finding in findings:
                log_finding(finding)
        self._dirty = True
        now = self._monotonic()
        if self._saved_at is None or now - self._saved_at >= self._save_interval:
            self._save()

    def _save(self) -> None:
        if self._state is not None and self._dirty:
            self._detector.store.save(self._state)
            self._saved_at = self._monotonic()
            self._dirty = False

    def flush(self) -> None:
        """Save what the run's last batches added; the next run reads the state afresh."""
        try:
            self._save()
        finally:
            self._state = None

    def describe(self) -> str:
        return f"{self._inner.describe()} (findings: {self._findings.describe()})"

    def close(self) -> None:
        for part in (self._inner, self._findings):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()


def _payload(entry: ExportEntry) -> dict[str, Any] | None:
    try:
        value = json.loads(entry.payload_json)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _labelled(entry: ExportEntry, managed: set[str]) -> ExportEntry:
    if entry.labels.get("activity") not in _KEY_CHANGE_NAMES:
        return entry
    flag = "true" if entry.insert_id in managed else "false"
    labels = MappingProxyType({**entry.labels, MANAGED_LABEL: flag})
    return entry._replace(labels=labels, size=entry.size + len(MANAGED_LABEL) + len(flag))
