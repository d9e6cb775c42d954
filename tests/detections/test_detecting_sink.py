"""The export's detections across batches and runs: one finding per incident, nothing lost when
the findings log fails, and a defective rule never stops the audit trail's export."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from tests.audit.audit_support import T0, Clock, ListSource, MemorySink, record

from instantly_guard.audit.checkpoint import LocalCheckpointStore
from instantly_guard.audit.detecting import DetectingSink
from instantly_guard.audit.entries import to_export_entry
from instantly_guard.audit.exporter import Exporter, ExportOptions, StopReason
from instantly_guard.detections import Config, detection
from instantly_guard.detections.detector import Detector
from instantly_guard.detections.model import Severity
from instantly_guard.detections.registry import ALL_DETECTIONS
from instantly_guard.detections.state import DetectionState, LocalStateStore, MemoryStateStore

OPTIONS = ExportOptions(lookback=timedelta(days=2), checkpoint_interval=timedelta(0))
ALICE = {"user_id": "u-alice", "user_name": "Alice"}


class Rig:
    def __init__(self, tmp_path: Path, rules=ALL_DETECTIONS) -> None:  # type: ignore[no-untyped-def]
        self.clock = Clock(T0 + timedelta(hours=1))
        self.source = ListSource(order="asc")
        self.audit = MemorySink()
        self.findings = MemorySink()
        self.detector = Detector(
            Config(), LocalStateStore(tmp_path / "detections.json"), rules, clock=self.clock
        )
        self.sink = DetectingSink(self.audit, self.detector, self.findings)
        self.store = LocalCheckpointStore(tmp_path / "checkpoint.json")

    def run(self) -> StopReason:
        summary = Exporter(self.source, self.sink, self.store, OPTIONS, clock=self.clock).run()
        self.sink.flush()  # as the service does after each run
        return summary.stopped_reason

    def rules_found(self) -> list[str]:
        return [e.labels["rule"] for e in self.findings.entries]


def test_a_burst_split_across_runs_is_one_finding(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.source.records += [record(T0 + timedelta(minutes=i), 29, **ALICE) for i in range(2)]
    assert rig.run() is StopReason.COMPLETE
    assert rig.rules_found() == []  # two failures: below the threshold of 3

    rig.clock.advance(timedelta(minutes=30))
    rig.source.records += [record(T0 + timedelta(minutes=40 + i), 29, **ALICE) for i in range(2)]
    assert rig.run() is StopReason.COMPLETE
    assert rig.rules_found() == ["audit.mfa-failures"]  # the third failure, in the next run

    rig.clock.advance(timedelta(minutes=30))
    rig.source.records.append(record(T0 + timedelta(minutes=90), 29, **ALICE))
    assert rig.run() is StopReason.COMPLETE
    assert rig.rules_found() == ["audit.mfa-failures"]  # more of the same burst: no new one


def test_a_findings_log_failure_fails_the_batch_and_loses_no_finding(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.source.records.append(record(T0, 26, **ALICE))  # TOTP disabled
    rig.findings.fail_after = 0
    assert rig.run() is StopReason.FAILED
    assert rig.findings.entries == []

    assert rig.run() is StopReason.COMPLETE
    assert rig.rules_found() == ["audit.totp-disabled"]
    assert rig.run() is StopReason.COMPLETE
    assert rig.rules_found() == ["audit.totp-disabled"]


def test_a_defective_rule_is_logged_and_the_export_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @detection(
        "test.broken", title="broken", severity=Severity.LOW, fix="-", help="-", activities=(26,)
    )
    def broken(events, config):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    rig = Rig(tmp_path, rules=(broken,))
    rig.source.records.append(record(T0, 26, **ALICE))
    with caplog.at_level(logging.ERROR, logger="instantly_guard.audit"):
        assert rig.run() is StopReason.COMPLETE
    assert len(rig.audit.entries) == 1
    assert "detections failed" in caplog.text


def test_only_key_changes_get_the_managed_rotation_label(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    managed = {"id": "k-2", "name": "instantly-guard/audit/r-2", "scopes": ["audit_logs:read"]}
    rig.source.records += [
        record(T0, 1, **ALICE),
        record(T0 + timedelta(minutes=1), 37, api_key_id="k-admin", audit_metadata=managed),
        record(T0 + timedelta(minutes=2), 37, api_key_id="k-admin", audit_metadata={"name": "x"}),
    ]
    assert rig.run() is StopReason.COMPLETE
    labels = [e.labels.get("managed_rotation") for e in rig.audit.entries]
    assert labels == [None, "true", "false"]
    assert rig.rules_found() == ["audit.key-change-outside-rotation"]


class CountingStore(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self.loads = 0

    def load(self) -> DetectionState:
        self.loads += 1
        return super().load()

    def save(self, state: DetectionState) -> None:
        self.saves += 1
        super().save(state)


def test_the_state_is_read_once_per_run_and_saved_at_most_once_a_second() -> None:
    """Cloud Storage takes about one write per second to one object: a catch-up writing many
    batches a second saves the first and then the rest at the end of the run."""
    store = CountingStore()
    ticks = iter([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    sink = DetectingSink(
        MemorySink(), Detector(Config(), store), MemorySink(), monotonic=lambda: next(ticks)
    )
    for i in range(3):
        sink.write([to_export_entry(record(T0 + timedelta(minutes=i), 26, **ALICE))])
    assert (store.loads, store.saves) == (1, 1)
    sink.flush()
    assert store.saves == 2
    assert len(store.state.fired) == 3  # the last save holds every batch
