"""The inventory's change entries go through the detection rule base: a promotion, a removed
block-list entry or a webhook sent outside the allow list makes one finding in the findings log,
once per incident however often the run is repeated; an unprivileged change makes none."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.standins.gcs import GcsStandIn
from tests.standins.logging_api import LoggingStandIn

from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.service import findings_path
from instantly_guard.audit.severity import Severity as AuditSeverity
from instantly_guard.audit.sinks.local import JsonlSink, read_entries
from instantly_guard.detections.base import detection
from instantly_guard.detections.model import Config, Severity
from instantly_guard.errors import BackendError, ConfigError
from instantly_guard.inventory import changes as changes_
from instantly_guard.inventory.findings import INVENTORY_RULES, FindingsSink, inventory_detector
from instantly_guard.inventory.service import local_sink, respond
from instantly_guard.inventory.settings import InventorySettings
from instantly_guard.inventory.stores import LocalSnapshotStore
from instantly_sandbox import Sandbox
from instantly_sandbox.seed import BLOCKED, MEMBER_PENDING

from .inventory_support import Clock, Person, changes, inventory_env, inventory_key, service

PROMOTED = "inventory.member-promoted"
UNBLOCKED = "inventory.blocklist-removed"
WEBHOOK = "inventory.webhook-target-outside-allowlist"


def _findings(state_dir: Path, *, unique: bool = False) -> list[dict[str, Any]]:
    """Every line of the local findings log (`instantly-guard findings` reads this file)."""
    return list(read_entries(findings_path(state_dir), unique=unique))


def _rules(found: list[dict[str, Any]]) -> list[str]:
    return sorted(e["jsonPayload"]["rule"] for e in found)


def _promote_unblock_and_demote(sb: Sandbox) -> None:
    """An editor made admin, a blocked domain removed, and an editor made a viewer."""
    with Person(sb) as person:
        pending = person.member_id(MEMBER_PENDING)
        person.call("PATCH", f"/workspace-members/{pending}", json={"role": "admin"})
        person.call("DELETE", f"/block-lists-entries/{person.block_id(BLOCKED[0])}")
        dave = person.member_id("dave@acme.example")
        person.call("PATCH", f"/workspace-members/{dave}", json={"role": "view"})


def test_promotion_and_unblocking_through_the_function_make_one_finding_each(
    sandbox: Sandbox, tmp_path: Path, function
) -> None:
    client = function(inventory_env(sandbox, tmp_path))

    baseline = client.post("/")
    _promote_unblock_and_demote(sandbox)
    changed = client.post("/")
    unchanged = client.post("/")

    assert [r.get_json()["outcome"] for r in (baseline, changed, unchanged)] == [
        "baseline",
        "changed",
        "unchanged",
    ]
    assert [r.get_json()["findings"] for r in (baseline, changed, unchanged)] == [0, 2, 0]
    assert sorted(changes(tmp_path)) == [
        ("blocklist.removed", BLOCKED[0]),
        ("member.role_changed", "dave@acme.example"),
        ("member.role_changed", MEMBER_PENDING),
    ]
    found = _findings(tmp_path)
    assert _rules(found) == [UNBLOCKED, PROMOTED]  # the editor->view change makes none
    promoted = next(e for e in found if e["jsonPayload"]["rule"] == PROMOTED)
    payload = promoted["jsonPayload"]
    assert promoted["logName"] == "instantly-guard-findings"
    assert promoted["severity"] == "ERROR"
    assert payload["mode"] == "inventory"
    assert payload["subject"].startswith("member/")
    assert "became admin (from editor)" in payload["message"]
    assert MEMBER_PENDING not in str(promoted)  # the address is redacted, as in the export
    # The finding names the change entry it rests on, which is in the audit log.
    entry_id = payload["audit_entry_ids"][0]
    audit = read_entries(tmp_path / "audit" / "instantly-audit.jsonl")
    assert entry_id in {e["insertId"] for e in audit}
    assert payload["incident"] == f"{PROMOTED}:{entry_id}"  # the insertId's source


class FailingOnce:
    """The real JSONL sink of the findings log, unavailable for its first write."""

    def __init__(self, inner: JsonlSink) -> None:
        self.inner, self.failed = inner, False

    def write(self, entries: Sequence[ExportEntry]) -> None:
        if not self.failed:
            self.failed = True
            raise BackendError("Cloud Logging unavailable")
        self.inner.write(entries)

    def describe(self) -> str:
        return self.inner.describe()


def test_a_failed_findings_write_fails_the_run_and_the_next_run_writes_them(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Nothing is lost: the snapshot is not stored, so the next run finds the same changes."""
    clock = Clock()
    findings = FailingOnce(local_sink(tmp_path, "instantly-guard-findings"))
    svc = service(sandbox, tmp_path, clock, sink=local_sink(tmp_path), findings_sink=findings)
    svc.run()
    _promote_unblock_and_demote(sandbox)
    clock.advance()

    failed = svc.run()
    assert failed.error is not None
    assert respond(failed).status == 503
    assert _findings(tmp_path) == []
    clock.advance()
    retried = svc.run()
    svc.close()

    assert (retried.outcome, retried.findings) == ("changed", 2)
    assert _rules(_findings(tmp_path)) == [UNBLOCKED, PROMOTED]


def test_a_defect_in_a_rule_is_logged_and_the_change_entries_still_land(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @detection(
        "inventory.broken",
        title="t",
        severity=Severity.LOW,
        fix="f",
        help="h",
        changes=("member.*",),
    )
    def broken(events: Any, config: Any) -> list[Any]:
        raise KeyError("role")

    audit, findings = local_sink(tmp_path), local_sink(tmp_path, "instantly-guard-findings")
    sink = FindingsSink(audit, inventory_detector(Config(), [broken]), findings)
    change = changes_.Change(
        "member.role_changed",
        "member",
        "m1",
        "gina@acme.example",
        {"role": "editor"},
        {"role": "admin"},
        AuditSeverity.WARNING,
        "b",
        "a",
    )
    at = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    entry = changes_.to_export_entry(change, observed_at=at, previous_snapshot_at=at)

    sink.write([entry])

    assert [e["insertId"] for e in read_entries(tmp_path / "audit" / "instantly-audit.jsonl")] == [
        entry.insert_id
    ]
    assert _findings(tmp_path) == []
    assert "detections failed" in caplog.text


def test_a_run_repeated_after_a_crash_writes_the_same_finding_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Killed after writing, before storing the snapshot: the rerun writes the same entries and
    the same findings (insertId and timestamp), which Cloud Logging and the reader collapse."""

    class CrashingStore(LocalSnapshotStore):
        def write(self, body: bytes, if_generation: int) -> int:
            raise BackendError("killed before the snapshot was stored")

    clock = Clock()
    first = service(sandbox, tmp_path, clock)
    first.run()
    _promote_unblock_and_demote(sandbox)
    clock.advance()
    snapshot = tmp_path / "inventory" / "snapshot.bin"
    crashing = service(sandbox, tmp_path, clock, store=CrashingStore(snapshot))
    crashed = crashing.run()
    clock.advance()
    rerun = first.run()
    first.close()
    crashing.close()

    assert crashed.error is not None
    assert rerun.outcome == "changed"
    lines = _findings(tmp_path)
    assert _rules(lines) == [UNBLOCKED, UNBLOCKED, PROMOTED, PROMOTED]
    assert len({(e["insertId"], e["timestamp"]) for e in lines}) == 2
    assert _rules(_findings(tmp_path, unique=True)) == [UNBLOCKED, PROMOTED]


def test_a_webhook_sent_outside_the_allowed_hosts_is_a_finding(
    sandbox: Sandbox, tmp_path: Path, function
) -> None:
    client = function(inventory_env(sandbox, tmp_path, DETECT_WEBHOOK_HOSTS="hooks.acme.example"))
    client.post("/")
    with Person(sandbox) as person:
        for name, url in (("inside", "https://hooks.acme.example/a"), ("outside", "https://x.io/")):
            person.call(
                "POST",
                "/webhooks",
                json={"target_hook_url": url, "event_type": "reply_received", "name": name},
            )

    assert client.post("/").status_code == 200

    (found,) = _findings(tmp_path)
    assert found["jsonPayload"]["rule"] == WEBHOOK
    assert "'x.io'" in found["jsonPayload"]["message"]


def test_detections_off_writes_no_findings(sandbox: Sandbox, tmp_path: Path, function) -> None:
    client = function(inventory_env(sandbox, tmp_path, AUDIT_DETECTIONS="false"))
    client.post("/")
    _promote_unblock_and_demote(sandbox)

    assert client.post("/").get_json()["outcome"] == "changed"
    assert not findings_path(tmp_path).exists()


def test_deployed_shape_writes_findings_to_their_own_cloud_logging_log(
    sandbox: Sandbox, function
) -> None:
    with LoggingStandIn() as logging_api, GcsStandIn() as gcs:
        client = function(
            {
                "GUARD_BACKEND": "gcp",
                "GOOGLE_CLOUD_PROJECT": "demo-project",
                "INSTANTLY_API_BASE": sandbox.base_url,
                "INSTANTLY_API_KEY": inventory_key(sandbox),
                "INVENTORY_SNAPSHOT_BUCKET": "demo-inventory",
                "AUDIT_FINDINGS_LOG": "security-findings",
                "LOGGING_EMULATOR_HOST": logging_api.target,
                "STORAGE_EMULATOR_HOST": gcs.url,
            }
        )

        client.post("/")
        _promote_unblock_and_demote(sandbox)
        changed = client.post("/")
        unchanged = client.post("/")

        assert [r.get_json()["outcome"] for r in (changed, unchanged)] == ["changed", "unchanged"]
        found = logging_api.stored_in("security-findings")
        assert sorted(e.labels["rule"] for e in found) == [UNBLOCKED, PROMOTED]
        promoted = next(e for e in found if e.labels["rule"] == PROMOTED)
        assert promoted.severity == 500  # ERROR: a high finding
        assert promoted.labels["severity"] == "high"
        assert promoted.json_payload["kind"] == "instantly-guard.finding"
        # Stamped with its change entry's time, so a rerun's copy collapses with it.
        (entry,) = [
            e
            for e in logging_api.stored_in("instantly-audit")
            if e.insert_id == promoted.json_payload["audit_entry_ids"][0]
        ]
        assert promoted.timestamp == entry.timestamp


def test_settings_read_the_exports_detection_names() -> None:
    env = {
        "GUARD_BACKEND": "local",
        "INSTANTLY_API_KEY": "k" * 40,
        "DETECT_WEBHOOK_HOSTS": "*.run.app, hooks.acme.example",
        "AUDIT_FINDINGS_LOG": "sec/findings",
    }

    detections = InventorySettings.from_env(env).detections

    assert detections.config.webhook_allowed_hosts == ("*.run.app", "hooks.acme.example")
    assert detections.findings_log == "sec/findings"
    with pytest.raises(ConfigError, match="AUDIT_FINDINGS_LOG"):
        InventorySettings.from_env({**env, "AUDIT_FINDINGS_LOG": "bad log"})


def test_the_inventory_evaluates_exactly_the_rules_that_read_change_entries() -> None:
    assert {r.id for r in INVENTORY_RULES} == {PROMOTED, UNBLOCKED, WEBHOOK}

    @detection(
        "inventory.windowed",
        title="t",
        severity=Severity.LOW,
        fix="f",
        help="h",
        changes=("member.*",),
        lookback=timedelta(hours=1),
    )
    def windowed(events: Any, config: Any) -> list[Any]:
        return []

    # It keeps no state between batches, so a rule that looks back is refused, not half-run.
    with pytest.raises(ConfigError, match=r"inventory\.windowed"):
        inventory_detector(Config(), [windowed])
