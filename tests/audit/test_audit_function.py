"""`functions/audit_export/main.py` through functions-framework: the local stack end to end, and
the deployed shape (GUARD_BACKEND=gcp) with the real Google clients against the Cloud Logging
and Cloud Storage stand-ins."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.standins.gcs import GcsStandIn
from tests.standins.logging_api import LoggingStandIn

from instantly_guard.audit.checkpoint import Checkpoint

from .audit_support import assert_exact

MAIN = Path(__file__).resolve().parents[2] / "functions" / "audit_export" / "main.py"
SCHEDULER = {
    "X-CloudScheduler-JobName": "instantly-audit-export",
    "X-CloudScheduler-ScheduleTime": "2026-03-04T12:05:00Z",
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main.py configures the root logger (JSON on stdout) at cold start; undo it afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def function(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A functions-framework test client for the audit function with `env` as its environment."""
    import functions_framework

    loaded: list[Any] = []

    def make(env: dict[str, str]) -> Any:
        for name in [n for n in os.environ if n.startswith(("AUDIT_", "GUARD_", "INSTANTLY_"))]:
            monkeypatch.delenv(name)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = functions_framework.create_app(target="export_audit_logs", source=str(MAIN))
        loaded.append(sys.modules["main"])  # the module functions-framework just loaded
        return app.test_client()

    yield make
    for module in loaded:
        for lazy in (module._service, module._check):
            built = lazy.reset()
            if built is not None:
                built.close()


@pytest.fixture
def sb(sandbox_factory):  # type: ignore[no-untyped-def]
    sandbox = sandbox_factory(seed="empty", listing_order="desc")
    sandbox.seed_audit_logs(2500, step=timedelta(seconds=20), activity_types=(1, 37, 38, 26))
    return sandbox


def test_local_stack_exports_and_answers_the_summary(sb, tmp_path, function) -> None:  # type: ignore[no-untyped-def]
    client = function(
        {
            "GUARD_BACKEND": "local",
            "GUARD_STATE_DIR": str(tmp_path),
            "INSTANTLY_API_BASE": sb.base_url,
            "INSTANTLY_API_KEY": sb.keys["admin"].key,
        }
    )

    response = client.post("/", headers=SCHEDULER)
    again = client.post("/", headers=SCHEDULER)

    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json()["exported"] == 2500
    assert again.get_json()["stopped_reason"] == "duplicate_delivery"
    lines = (tmp_path / "audit" / "instantly-audit.jsonl").read_text().splitlines()
    # Every line counts: a duplicate delivery that exported again must fail here.
    assert_exact([json.loads(line)["insertId"] for line in lines], sb.state.audit_logs.ids())
    assert client.get("/").status_code == 405


def test_missing_configuration_answers_503_naming_every_variable_and_logs_once(
    function, caplog
) -> None:  # type: ignore[no-untyped-def]
    # 503 with Retry-After, and built again later (instantly_guard.lazy): the earlier function
    # cached the error and answered 500 for the instance's whole life.
    client = function({"GUARD_BACKEND": "gcp"})

    with caplog.at_level(logging.ERROR, logger="instantly_guard"):
        response = client.post("/", headers=SCHEDULER)
        again = client.post("/", headers=SCHEDULER)

    assert response.status_code == again.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["kind"] == "config"
    assert len([r for r in caplog.records if "could not be built" in r.getMessage()]) == 1
    problems = " ".join(response.get_json()["error"]["problems"])
    assert "AUDIT_CHECKPOINT_BUCKET" in problems
    assert "GOOGLE_CLOUD_PROJECT" in problems


@pytest.mark.gcp
def test_deployed_shape_writes_cloud_logging_and_a_gcs_checkpoint(sb, function) -> None:  # type: ignore[no-untyped-def]
    with LoggingStandIn() as logging_api, GcsStandIn() as gcs:
        client = function(
            {
                "GUARD_BACKEND": "gcp",
                "GOOGLE_CLOUD_PROJECT": "demo-project",
                "AUDIT_CHECKPOINT_BUCKET": "demo-audit",
                "AUDIT_LOG_NAME": "instantly-audit",
                "INSTANTLY_API_BASE": sb.base_url,
                "INSTANTLY_API_KEY": sb.keys["admin"].key,
                "LOGGING_EMULATOR_HOST": logging_api.target,
                "STORAGE_EMULATOR_HOST": gcs.url,
            }
        )

        response = client.post("/", headers=SCHEDULER)
        sb.add_audit_log(20)
        later = client.post(
            "/", headers={**SCHEDULER, "X-CloudScheduler-ScheduleTime": "2026-03-04T12:10:00Z"}
        )

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["exported"] == 2500
        assert body["checkpoint"]["location"] == "gs://demo-audit/instantly-audit/checkpoint.json"
        assert later.get_json()["exported"] == 1
        assert all(len(call.entries) <= 1000 for call in logging_api.calls)
        # The trail, its digest chain's seals in a log of their own (audit/integrity.py), and
        # the findings of the rule base.
        assert {call.log_name for call in logging_api.calls} == {
            "projects/demo-project/logs/instantly-audit",
            "projects/demo-project/logs/instantly-audit-chain",
            "projects/demo-project/logs/instantly-guard-findings",
        }
        # The entry added between the runs (a webhook Instantly disabled) is a finding, once;
        # the rule base keeps its window beside the checkpoint.
        disabled = [
            e
            for e in logging_api.stored_in("instantly-guard-findings")
            if e.labels["rule"] == "audit.webhook-disabled"
        ]
        assert len(disabled) == 1
        assert disabled[0].severity == 500  # ERROR: a high-severity finding
        assert "demo-audit/instantly-audit/detections.json" in gcs.objects
        # Counted by insertId occurrences in what the stand-in stored, not after collapsing:
        # neither run may write an entry twice.
        assert_exact(
            [e.insert_id for e in logging_api.stored_in("instantly-audit")],
            sb.state.audit_logs.ids(),
        )
        assert "demo-audit/instantly-audit/chain-head.json" in gcs.objects
        data, _ = gcs.objects["demo-audit/instantly-audit/checkpoint.json"]
        state = Checkpoint.from_bytes(data)
        assert state.exported_total == 2501
        assert {r.key for r in state.runs} >= {"instantly-audit-export@2026-03-04T12:05:00Z"}
