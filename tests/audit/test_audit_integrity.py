"""The audit trail's digest chain (issue 18): an entry another writer adds to the exported log is
detected, over the local JSONL files and over Cloud Logging (the stand-in, real client library).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.logging_v2.types import LogEntry, WriteLogEntriesRequest
from tests.standins.logging_api import LoggingStandIn

from instantly_guard.audit.chainhead import LocalChainHead
from instantly_guard.audit.checkpoint import MemoryCheckpointStore
from instantly_guard.audit.entries import to_export_entry
from instantly_guard.audit.exporter import Exporter, ExportOptions, StopReason
from instantly_guard.audit.integrity import GENESIS, digest, seal_entry, verify_chain
from instantly_guard.audit.sinks import gcp
from instantly_guard.audit.sinks.gcp import CloudLoggingSink
from instantly_guard.audit.sinks.sealing import SealingSink
from instantly_guard.cli import main

from .audit_support import T0, Clock, ListSource, record, spread

PROJECT = "demo-project"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def env(sandbox_factory, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty", listing_order="random")
    for name in [n for n in os.environ if n.startswith(("AUDIT_", "GUARD_", "INSTANTLY_"))]:
        monkeypatch.delenv(name)
    for key, value in {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.keys["admin"].key,
    }.items():
        monkeypatch.setenv(key, value)
    return sb


def verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["export-audit", "--verify-chain", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def append(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def test_the_exported_trail_verifies_and_a_foreign_entry_is_detected(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.seed_audit_logs(2500, step=timedelta(seconds=30))
    assert main(["export-audit", "--format", "json"]) == 0
    env.seed_audit_logs(300, step=timedelta(seconds=1))
    assert main(["export-audit", "--format", "json"]) == 0  # a second run continues the chain
    capsys.readouterr()
    code, report = verify(capsys)
    assert code == 0, report
    assert report["entries"] == 2800
    assert report["seals"] >= 4  # batches of at most 1,000, over two runs
    assert len(report["tips"]) == 1

    # Another writer (logging.logWriter is project-wide) adds an entry to the audit log.
    trail = tmp_path / "audit" / "instantly-audit.jsonl"
    forged = json.loads(trail.read_text().splitlines()[-1])
    forged["insertId"] = "019ffad2-0000-7000-8000-00000000f0f0"
    forged["jsonPayload"]["user_name"] = "nobody did this"
    append(trail, forged)
    code, report = verify(capsys)
    assert code == 1
    assert report["unsealed"] == [forged["insertId"]]

    # ... and, knowing the scheme, a seal for it chained to the trail: a fork.
    tip = report["tips"][0]
    seal = seal_entry(tip, [to_export_entry(record(T0, 1, entry_id=forged["insertId"]))])
    chain = tmp_path / "audit" / "instantly-audit-chain.jsonl"
    append(
        chain,
        {"insertId": seal.insert_id, "labels": dict(seal.labels), "jsonPayload": seal.payload},
    )
    code, report = verify(capsys)
    assert code == 1
    assert report["head"] or report["forks"]  # the stored head is not the forged tip
    assert not report["unsealed"]


def test_a_run_stopped_between_seal_and_head_reseals_without_a_false_alarm(tmp_path: Path) -> None:
    records = spread(30, T0 - timedelta(hours=1), timedelta(minutes=1))
    entries = [to_export_entry(r) for r in records]
    first = seal_entry(GENESIS, entries[:10])  # written, but the head never moved
    again = seal_entry(GENESIS, entries[:20])  # the next run re-exports the batch, larger
    after = seal_entry(again.insert_id.removeprefix("chain-"), entries[20:])
    data = [{"insertId": e.insert_id, "labels": dict(e.labels)} for e in entries]
    seals = [
        {"insertId": s.insert_id, "labels": dict(s.labels), "jsonPayload": s.payload}
        for s in (first, again, after)
    ]
    report = verify_chain(data, seals, head=after.insert_id.removeprefix("chain-"))
    assert report.ok, report.as_json()

    tampered = json.loads(json.dumps(seals))
    tampered[2]["jsonPayload"]["chain"]["ids"].append("added-later")
    assert verify_chain(data, tampered).altered == [after.insert_id]
    assert verify_chain(data, seals, head=digest(GENESIS, ["x"])).head


def test_the_chain_over_cloud_logging_detects_an_entry_written_by_another_writer() -> None:
    records = spread(2300, T0 - timedelta(hours=2), timedelta(seconds=2), activity_types=(1, 37))
    with LoggingStandIn() as standin:
        client = standin.client()
        try:
            head = MemoryChainHead()
            sink = SealingSink(
                CloudLoggingSink(client, project=PROJECT, log_id="instantly-audit"),
                CloudLoggingSink(client, project=PROJECT, log_id="instantly-audit-chain"),
                head,
            )
            options = ExportOptions(lookback=timedelta(days=1), checkpoint_interval=timedelta(0))
            summary = Exporter(
                ListSource(records, order="asc"),
                sink,
                MemoryCheckpointStore(),
                options,
                clock=Clock(T0),
            ).run()
            assert summary.stopped_reason is StopReason.COMPLETE

            def check() -> Any:
                return verify_chain(
                    gcp.read_entries(client, PROJECT, "instantly-audit"),
                    gcp.read_entries(client, PROJECT, "instantly-audit-chain"),
                    head=head.read()[0],
                )

            report = check()
            assert report.ok, report.as_json()
            assert report.entries == 2300

            # Any workload with logging.logWriter writes into the same log.
            client.write_log_entries(
                request=WriteLogEntriesRequest(
                    log_name=f"projects/{PROJECT}/logs/instantly-audit",
                    resource={"type": "global"},
                    entries=[
                        LogEntry(
                            insert_id="forged-by-another-writer",
                            json_payload={"activity": "api_key_deleted"},
                            labels={"activity": "api_key_deleted"},
                        )
                    ],
                )
            )
            report = check()
            assert not report.ok
            assert report.unsealed == ["forged-by-another-writer"]
        finally:
            client.transport.close()


class MemoryChainHead:  # a head in memory: the store is not under test here
    def __init__(self) -> None:
        self.value, self.generation = GENESIS, 0

    def read(self) -> tuple[str, int]:
        return self.value, self.generation

    def write(self, head: str, if_generation: int) -> int:
        assert if_generation == self.generation
        self.value, self.generation = head, self.generation + 1
        return self.generation


def test_the_local_head_is_compare_and_swap(tmp_path: Path) -> None:
    head = LocalChainHead(tmp_path / "chain-head.json")
    assert head.read() == (GENESIS, 0)
    generation = head.write("a" * 64, 0)
    assert head.read() == ("a" * 64, generation)
    from instantly_guard.errors import ConflictError

    with pytest.raises(ConflictError):
        head.write("b" * 64, 0)


def _as_logged(seal: Any) -> dict[str, Any]:
    return {"insertId": seal.insert_id, "labels": dict(seal.labels), "jsonPayload": seal.payload}


def test_two_writers_keep_two_chains_and_old_seals_read_as_the_exports() -> None:
    records = spread(30, T0 - timedelta(hours=1), timedelta(minutes=1))
    entries = [to_export_entry(r) for r in records]
    # A seal written before writers were named: no writer field, no writer in its digest.
    old_digest = digest(GENESIS, [e.insert_id for e in entries[:10]])
    legacy = {
        "insertId": "chain-" + old_digest,
        "labels": {"chain_seal": "true"},
        "jsonPayload": {
            "chain": {
                "prev": GENESIS,
                "digest": old_digest,
                "count": 10,
                "ids": sorted(e.insert_id for e in entries[:10]),
            }
        },
    }
    export = seal_entry(old_digest, entries[10:20], "export")
    inventory = seal_entry(GENESIS, entries[20:25], "inventory")
    inventory2 = seal_entry(inventory.insert_id.removeprefix("chain-"), entries[25:], "inventory")
    data = [{"insertId": e.insert_id, "labels": dict(e.labels)} for e in entries]
    seals = [legacy, *(_as_logged(s) for s in (export, inventory, inventory2))]
    heads = {
        "export": export.insert_id.removeprefix("chain-"),
        "inventory": inventory2.insert_id.removeprefix("chain-"),
    }

    report = verify_chain(data, seals, heads=heads)

    assert report.ok, report.as_json()
    assert report.writers == {"export": [heads["export"]], "inventory": [heads["inventory"]]}
    # Each chain against its own head: the inventory's stored head is not the export's tip.
    stale = verify_chain(data, seals, heads={**heads, "inventory": heads["export"]})
    assert len(stale.head) == 1
    assert "inventory" in stale.head[0]

    # The writer is in the digest: a seal moved to the other chain no longer matches.
    moved = json.loads(json.dumps(seals))
    moved[3]["jsonPayload"]["chain"]["writer"] = "export"
    assert verify_chain(data, moved).altered == [inventory2.insert_id]


def test_the_local_chain_head_compare_and_swap_holds_across_threads(tmp_path: Path) -> None:
    """Two writers (the export and an overlapping run) share one head file: every write either
    lands on the generation it read or is refused with ConflictError, never a torn rename, and
    the generation counts exactly the writes that landed."""
    import threading

    from instantly_guard.errors import ConflictError

    head = LocalChainHead(tmp_path / "chain-head.json")
    landed: list[int] = []
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        for i in range(150):
            _, generation = head.read()
            try:
                landed.append(head.write(digest(tag, [str(i)]), generation))
            except ConflictError:
                continue
            except BaseException as exc:  # a shared temporary file made this FileNotFoundError
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(landed) == list(range(1, len(landed) + 1))
    assert head.read()[1] == len(landed)
