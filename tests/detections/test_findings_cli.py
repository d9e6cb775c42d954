"""`instantly-guard findings` prints the local findings log as text and as JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from instantly_guard.audit.detecting import finding_entry
from instantly_guard.audit.service import findings_path
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.cli import main
from instantly_guard.detections import Config
from instantly_guard.detections.detector import Detector
from instantly_guard.detections.state import MemoryStateStore

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def _payload(entry_id: str, activity: int, minutes: int, user: str) -> dict[str, object]:
    return {
        "id": entry_id,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        "activity_type": activity,
        "user_id": "u-1",
        "user_name": user,
        "ip_address": "198.51.100.23",
        "from_api": False,
    }


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GUARD_BACKEND", "GUARD_STATE_DIR", "AUDIT_FINDINGS_LOG"):
        monkeypatch.delenv(name, raising=False)
    detector = Detector(Config(), MemoryStateStore(), clock=lambda: T0 + timedelta(hours=1))
    user = "Mallory\x1b[2J"  # an escape sequence in a name Instantly stores as given
    entries = [
        (f"e{i}", _payload(f"e{i}", 29, i, user), T0 + timedelta(minutes=i)) for i in range(3)
    ]
    entries.append(("e9", _payload("e9", 28, 9, user), T0 + timedelta(minutes=9)))
    findings, _ = detector.evaluate(entries, detector.store.load())
    JsonlSink(findings_path(tmp_path), log_name="instantly-guard-findings").write(
        [finding_entry(f) for f in findings]
    )
    return tmp_path


def test_text_lists_each_finding_with_its_entries_and_fix(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["findings", "--state-dir", str(state), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "HIGH      audit.mfa-failures  T1621" in out
    assert "entries: e0, e1, e2" in out
    assert "fix: Confirm with the user" in out
    assert "\x1b" not in out
    assert "\\x1b[2J" in out
    assert out.rstrip().endswith("2 findings (1 high, 1 medium)")


def test_json_is_one_object_per_finding_and_filters_apply(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["findings", "--state-dir", str(state), "--format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [f["rule"] for f in lines] == ["audit.mfa-failures", "audit.mfa-recovery-code-used"]
    assert lines[0]["audit_entry_ids"] == ["e0", "e1", "e2"]
    assert lines[0]["incident"].startswith("audit.mfa-failures:")

    assert (
        main(["findings", "--state-dir", str(state), "--format", "json", "--severity", "high"]) == 0
    )
    assert [json.loads(x)["rule"] for x in capsys.readouterr().out.splitlines()] == [
        "audit.mfa-failures"
    ]


def test_the_deployed_log_is_named_not_read(
    state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_BACKEND", "gcp")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "acme")
    assert main(["findings"]) == 2
    assert "gcloud logging read" in capsys.readouterr().err
