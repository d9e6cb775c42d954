from __future__ import annotations

import io
import json
import logging
from types import MappingProxyType

import pytest
from tests.check.check_fixtures import key, snapshot, webhook

from instantly_guard.check import (
    ALL_RULES,
    WORKSPACE_RULE_IDS,
    Policy,
    Section,
    SectionError,
    Severity,
    evaluate,
    exit_code,
    log_findings,
)
from instantly_guard.logs import JsonFormatter


def test_rules_of_an_unreadable_section_are_skipped_with_the_reason() -> None:
    error = SectionError("cannot read audit: the key lacks audit_logs:read", "Create a key ...")
    snap = snapshot(
        keys=(),
        webhooks=(),
        members=(),
        block_list=(),
        errors=MappingProxyType({Section.AUDIT: error}),
    )
    findings = evaluate(snap, Policy())
    audit = [f for f in findings if f.rule_id.startswith("audit.")]
    assert len(audit) == 3
    assert all(f.skipped and f.evidence == error.message and f.fix == error.fix for f in audit)
    # Sections not asked for (the repository here) give nothing at all.
    assert not [f for f in findings if f.rule_id.startswith("repository.")]


def test_disabled_rules_are_left_out() -> None:
    snap = snapshot(keys=(key("admin", "all:all"),))
    ids = {f.rule_id for f in evaluate(snap, Policy(disabled_rules=("keys.full-access",)))}
    assert "keys.full-access" not in ids
    assert "keys.max-age" in ids


def test_rule_ids_are_unique_and_cover_every_area() -> None:
    ids = [r.id for r in ALL_RULES]
    assert len(ids) == len(set(ids)) == 22
    assert {r.section for r in ALL_RULES} == set(Section)
    assert len(WORKSPACE_RULE_IDS) == 20


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(Severity.CRITICAL, 1), (Severity.HIGH, 1), (Severity.INFO, 1), (None, 0)],
)
def test_exit_code_follows_fail_on(threshold: Severity | None, expected: int) -> None:
    findings = evaluate(snapshot(keys=(key("admin", "all:all"),)), Policy())
    assert exit_code(findings, threshold) == expected


def test_medium_failures_do_not_fail_at_high() -> None:
    findings = evaluate(snapshot(keys=(key("old", "leads:read", age_days=400),)), Policy())
    failed = {f.rule_id for f in findings if f.failed}
    assert failed == {"keys.max-age", "keys.unmanaged"}
    assert exit_code(findings, Severity.HIGH) == 0
    assert exit_code(findings, Severity.MEDIUM) == 1


def test_skipped_rules_fail_only_when_asked() -> None:
    findings = evaluate(snapshot(webhooks=(webhook(),)), Policy())
    assert any(f.skipped for f in findings)
    assert exit_code(findings, Severity.HIGH) == 0
    assert exit_code(findings, Severity.HIGH, fail_on_skipped=True) == 1


def test_log_findings_writes_one_structured_warning_per_problem() -> None:
    findings = evaluate(
        snapshot(
            keys=(key("admin", "all:all"),),
            webhooks=(webhook("h", "http://x.example/in", headers=None),),
        ),
        Policy(),
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.check.log_findings")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        count = log_findings(findings, logger)
    finally:
        logger.removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    warnings = [r for r in records if r["severity"] == "WARNING"]
    assert count == len(warnings) == sum(1 for f in findings if not f.passed)
    full = next(r for r in warnings if r["check_rule"] == "keys.full-access")
    assert full["check_severity"] == "critical"
    assert full["check_status"] == "fail"
    assert full["check_subject"] == "api-key/id-admin"
    assert full["logging.googleapis.com/labels"]["check_rule"] == "keys.full-access"
    assert not [r for r in records if r.get("check_status") == "pass"]
