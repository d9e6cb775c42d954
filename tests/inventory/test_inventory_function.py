"""The `run_inventory` Cloud Function through functions-framework: locally (JSONL log, snapshot
file) and in its deployed shape (Cloud Logging and Cloud Storage stand-ins, real clients)."""

from __future__ import annotations

from pathlib import Path

from tests.standins.gcs import GcsStandIn
from tests.standins.logging_api import LoggingStandIn

from instantly_sandbox import Sandbox
from instantly_sandbox.seed import MEMBER_PENDING

from .inventory_support import Person, changes, inventory_key


def _promote(sb: Sandbox) -> None:
    with Person(sb) as person:
        member = person.member_id(MEMBER_PENDING)
        person.call("PATCH", f"/workspace-members/{member}", json={"role": "admin"})


def test_local_function_answers_the_report(sandbox: Sandbox, tmp_path: Path, function) -> None:
    client = function(
        {
            "GUARD_BACKEND": "local",
            "GUARD_STATE_DIR": str(tmp_path),
            "INSTANTLY_API_BASE": sandbox.base_url,
            "INSTANTLY_API_KEY": inventory_key(sandbox),
        }
    )

    first = client.post("/")
    _promote(sandbox)
    second = client.post("/")

    assert first.status_code == 200, first.get_json()
    assert first.get_json()["outcome"] == "baseline"
    assert second.get_json()["outcome"] == "changed"
    assert second.get_json()["changes"] == {"member.role_changed": 1}
    assert changes(tmp_path) == [("member.role_changed", MEMBER_PENDING)]
    assert client.get("/").status_code == 405


def test_missing_configuration_answers_503_naming_every_variable(function) -> None:
    client = function({"GUARD_BACKEND": "gcp"})

    response = client.post("/")

    assert response.status_code == 503
    problems = " ".join(response.get_json()["error"]["problems"])
    assert "INVENTORY_SNAPSHOT_BUCKET" in problems
    assert "INVENTORY_API_KEY_SECRET" in problems
    assert "Retry-After" in response.headers


def test_deployed_shape_writes_cloud_logging_and_a_gcs_snapshot(sandbox: Sandbox, function) -> None:
    with LoggingStandIn() as logging_api, GcsStandIn() as gcs:
        client = function(
            {
                "GUARD_BACKEND": "gcp",
                "GOOGLE_CLOUD_PROJECT": "demo-project",
                "INSTANTLY_API_BASE": sandbox.base_url,
                "INSTANTLY_API_KEY": inventory_key(sandbox),
                "INVENTORY_SNAPSHOT_BUCKET": "demo-inventory",
                "LOGGING_EMULATOR_HOST": logging_api.target,
                "STORAGE_EMULATOR_HOST": gcs.url,
            }
        )

        baseline = client.post("/")
        _promote(sandbox)
        changed = client.post("/")
        unchanged = client.post("/")

        assert baseline.status_code == 200, baseline.get_json()
        assert [r.get_json()["outcome"] for r in (baseline, changed, unchanged)] == [
            "baseline",
            "changed",
            "unchanged",
        ]
        # The promotion is a finding too (test_inventory_findings.py), in its own log; each
        # batch of change entries is sealed into the inventory's chain (audit/integrity.py).
        assert {call.log_name for call in logging_api.calls} == {
            "projects/demo-project/logs/instantly-audit",
            "projects/demo-project/logs/instantly-audit-chain",
            "projects/demo-project/logs/instantly-guard-findings",
        }
        seals = logging_api.stored_in("instantly-audit-chain")
        assert [s.json_payload["chain"]["writer"] for s in seals] == ["inventory", "inventory"]
        stored = logging_api.stored_in("instantly-audit")
        assert [e.labels["change"] for e in stored] == ["inventory.baseline", "member.role_changed"]
        promoted = stored[1]
        assert promoted.labels["source"] == "inventory"
        assert promoted.json_payload["after"]["role"] == "admin"
        assert promoted.severity == 400  # WARNING
        assert "demo-inventory/instantly-inventory/snapshot.bin" in gcs.objects
        # Its chain head beside the snapshot, under the prefix the IAM condition allows.
        assert "demo-inventory/instantly-inventory/chain-head.json" in gcs.objects


def test_a_lost_gcs_answer_on_the_snapshot_write_is_not_a_conflict(
    sandbox: Sandbox, function
) -> None:
    """A retried upload whose first attempt was stored gets 412: the bytes are ours."""
    with LoggingStandIn() as logging_api, GcsStandIn() as gcs:
        client = function(
            {
                "GUARD_BACKEND": "gcp",
                "GOOGLE_CLOUD_PROJECT": "demo-project",
                "INSTANTLY_API_BASE": sandbox.base_url,
                "INSTANTLY_API_KEY": inventory_key(sandbox),
                "INVENTORY_SNAPSHOT_BUCKET": "demo-inventory",
                "LOGGING_EMULATOR_HOST": logging_api.target,
                "STORAGE_EMULATOR_HOST": gcs.url,
            }
        )
        gcs.lose_next_response()

        response = client.post("/")

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["outcome"] == "baseline"
