"""The inventory's change entries are sealed into a digest chain of their own (issue 18's chain,
two writers): the exported log with both the export's and the inventory's entries verifies, each
chain against its own head, and an inventory entry no seal lists is still caught."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from instantly_guard.cli import main
from instantly_sandbox import Sandbox

from .inventory_support import Clock, Person, inventory_entries, log_path, service


@pytest.fixture
def export_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit export's environment (its own admin key) on the inventory's state directory."""
    for name in [n for n in os.environ if n.startswith(("AUDIT_", "GUARD_", "INSTANTLY_"))]:
        monkeypatch.delenv(name)
    for key, value in {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": sandbox.base_url,
        "INSTANTLY_API_KEY": sandbox.keys["admin"].key,
    }.items():
        monkeypatch.setenv(key, value)


def verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["export-audit", "--verify-chain", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_inventory_and_export_entries_verify_as_two_chains(
    sandbox: Sandbox, tmp_path: Path, export_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)
    try:
        assert svc.run().error is None  # the baseline
        assert main(["export-audit", "--format", "json"]) == 0
        with Person(sandbox) as person:
            person.call(
                "POST", "/workspace-members", json={"email": "nina@acme.example", "role": "view"}
            )
        clock.advance()
        assert svc.run().error is None  # one change entry, sealed after the export's batch
        assert main(["export-audit", "--format", "json"]) == 0
    finally:
        svc.close()
    assert len(inventory_entries(tmp_path)) == 2

    code, report = verify(capsys)

    assert code == 0, report
    assert not report["unsealed"]
    assert set(report["writers"]) == {"export", "inventory"}
    inventory_head = json.loads((tmp_path / "inventory" / "chain-head.json").read_text())
    assert report["writers"]["inventory"] == [inventory_head["head"]]
    export_head = json.loads((tmp_path / "audit" / "chain-head.json").read_text())
    assert report["writers"]["export"] == [export_head["head"]]

    # An entry like the inventory's, written by another writer, is no inventory entry.
    forged = json.loads(json.dumps(inventory_entries(tmp_path)[-1]))
    forged["insertId"] = "inventory-forged-0001"
    with log_path(tmp_path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(forged) + "\n")
    code, report = verify(capsys)
    assert code == 1
    assert report["unsealed"] == ["inventory-forged-0001"]


def test_a_batch_whose_seal_failed_is_written_and_sealed_again_next_run(
    sandbox: Sandbox, tmp_path: Path, export_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopped between its batch and its seal (the chain log refuses the write), the run fails
    before storing its snapshot; the next run writes the same entries again, sealed."""
    chain_log = tmp_path / "audit" / "instantly-audit-chain.jsonl"
    chain_log.mkdir(parents=True)  # a directory where the seal's file should be: writes fail
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)
    try:
        assert svc.run().error is not None
        assert len(inventory_entries(tmp_path)) == 1  # the baseline, unsealed
        chain_log.rmdir()
        clock.advance()
        assert svc.run().error is None
    finally:
        svc.close()

    code, report = verify(capsys)

    assert code == 0, report
    assert report["writers"]["inventory"]
    assert len(inventory_entries(tmp_path, unique=False)) == 2  # one entry, written twice
