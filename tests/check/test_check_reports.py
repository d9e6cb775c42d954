"""Reporters. No copy of the SARIF 2.1.0 schema ships in an installed package (searched
site-packages), and nothing may be downloaded, so `SARIF_SUBSET` below restates, by hand from
the OASIS specification, the parts of the schema our output uses, closed with
additionalProperties=false so a misspelt property fails; jsonschema validates against it."""

from __future__ import annotations

import io
import json
from types import MappingProxyType
from typing import Any

import jsonschema
import pytest
from tests.check.check_fixtures import NOW, key, snapshot, webhook

from instantly_guard.check import (
    ALL_RULES,
    FileLocation,
    Finding,
    Policy,
    Report,
    Section,
    SectionError,
    Severity,
    evaluate,
)
from instantly_guard.check.report import FORMATS, render, sarif, table

_MESSAGE = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1}, "markdown": {"type": "string"}},
    "additionalProperties": False,
}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
_ARTIFACT_LOCATION = {
    "type": "object",
    "required": ["uri"],
    "properties": {"uri": {"type": "string", "minLength": 1}, "uriBaseId": {"type": "string"}},
    "additionalProperties": False,
}
_RULE_REFERENCE = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string"}, "index": {"type": "integer", "minimum": -1}},
    "additionalProperties": False,
}
SARIF_SUBSET: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool"],
                "additionalProperties": False,
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "additionalProperties": False,
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "semanticVersion": {"type": "string"},
                                    "informationUri": {"type": "string", "format": "uri"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "id": {"type": "string"},
                                                "name": {"type": "string"},
                                                "shortDescription": _MESSAGE,
                                                "fullDescription": _MESSAGE,
                                                "help": _MESSAGE,
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {"level": _LEVEL},
                                                    "additionalProperties": False,
                                                },
                                                "properties": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "originalUriBaseIds": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["uri"],
                            "properties": {"uri": {"type": "string", "pattern": "^file:///.*/$"}},
                        },
                    },
                    "invocations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["executionSuccessful"],
                            "additionalProperties": False,
                            "properties": {
                                "executionSuccessful": {"type": "boolean"},
                                "endTimeUtc": {"type": "string", "format": "date-time"},
                                "toolExecutionNotifications": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["message"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "level": _LEVEL,
                                            "message": _MESSAGE,
                                            "associatedRule": _RULE_REFERENCE,
                                        },
                                    },
                                },
                            },
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "additionalProperties": False,
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": _LEVEL,
                                "message": _MESSAGE,
                                "partialFingerprints": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "properties": {"type": "object"},
                                "locations": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation"],
                                                "additionalProperties": False,
                                                "properties": {
                                                    "artifactLocation": _ARTIFACT_LOCATION,
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine"],
                                                        "properties": {
                                                            "startLine": {
                                                                "type": "integer",
                                                                "minimum": 1,
                                                            }
                                                        },
                                                        "additionalProperties": False,
                                                    },
                                                },
                                            },
                                            "logicalLocations": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "additionalProperties": False,
                                                    "properties": {
                                                        "name": {"type": "string"},
                                                        "fullyQualifiedName": {"type": "string"},
                                                        "kind": {"type": "string"},
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "additionalProperties": False,
}


def sample_report() -> Report:
    error = SectionError("cannot read audit: the key lacks audit_logs:read", "Create a key")
    snap = snapshot(
        keys=(key("admin", "all:all"), key("old", "leads:read", age_days=200)),
        webhooks=(webhook("h", "http://hooks.example.com/in", headers=None),),
        members=(),
        block_list=(),
        errors=MappingProxyType({Section.AUDIT: error}),
    )
    findings = evaluate(snap, Policy())
    findings.append(
        Finding(
            rule_id="repository.committed-secret",
            title="Key-like strings in tracked files",
            severity=Severity.CRITICAL,
            passed=False,
            evidence="AWS Access Key in app/settings.py:3 (sha1 0123456789ab)",
            fix="Revoke it.",
            subject="app/settings.py:3",
            location=FileLocation("app/settings.py", 3),
        )
    )
    return Report(
        taken_at=NOW,
        findings=tuple(findings),
        target="http://127.0.0.1:8700/api/v2",
        workspace_name="Demo",
        repository="/tmp/project",
    )


def test_sarif_is_valid_against_the_specification_subset() -> None:
    document = json.loads(render(sample_report(), "sarif"))
    jsonschema.validate(document, SARIF_SUBSET, format_checker=jsonschema.FormatChecker())
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in ALL_RULES]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_levels_locations_and_notifications() -> None:
    run = sarif.document(sample_report())["runs"][0]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert by_rule["keys.full-access"]["level"] == "error"
    assert by_rule["keys.max-age"]["level"] == "warning"
    assert by_rule["keys.unmanaged"]["level"] == "note"
    workspace = by_rule["keys.full-access"]["locations"][0]
    assert workspace["physicalLocation"]["artifactLocation"]["uri"] == "instantly-workspace"
    assert workspace["logicalLocations"][0]["fullyQualifiedName"] == "api-key/id-admin"
    repo = by_rule["repository.committed-secret"]["locations"][0]["physicalLocation"]
    assert repo == {
        "artifactLocation": {"uri": "app/settings.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 3},
    }
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == "file:///tmp/project/"
    # Only failures are results; skipped rules are notifications.
    assert all(r["ruleId"] != "keys.multiple-key-creators" for r in run["results"])
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert {n["associatedRule"]["id"] for n in notes} >= {
        "audit.mfa-failures",
        "audit.totp-disabled",
    }
    help_text = run["tool"]["driver"]["rules"][0]
    assert help_text["properties"]["security-severity"] == "9.5"


def test_json_report_counts_and_lists_every_finding() -> None:
    report = sample_report()
    document = json.loads(render(report, "json"))
    assert document["workspace"] == "Demo"
    assert document["taken_at"] == "2025-06-01T12:00:00Z"
    assert document["summary"]["failed"] == len(report.failed)
    assert document["summary"]["critical"] == 2
    assert len(document["findings"]) == len(report.findings)
    first = document["findings"][0]
    assert set(first) >= {"rule_id", "severity", "status", "evidence", "fix", "subject", "location"}


def test_table_groups_by_rule_and_puts_failures_first() -> None:
    text = render(sample_report(), "table", colour=False)
    lines = text.splitlines()
    assert lines[0].startswith("instantly-guard check | workspace 'Demo'")
    status_lines = [line for line in lines if line[:4] in {"FAIL", "PASS", "SKIP"}]
    statuses = [line[:4] for line in status_lines]
    assert statuses == sorted(statuses, key={"FAIL": 0, "SKIP": 1, "PASS": 2}.__getitem__)
    assert status_lines[0].split()[1] == "critical"
    assert "\033[" not in text
    assert "fix: " in text
    assert lines[-1].startswith(f"{len(sample_report().failed)} findings (2 critical")


def test_table_colour_only_when_asked() -> None:
    assert "\033[31m" in render(sample_report(), "table", colour=True)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "expected"),
    [
        (Tty(), {}, True),
        (io.StringIO(), {}, False),
        (Tty(), {"NO_COLOR": "1"}, False),
        (Tty(), {"TERM": "dumb"}, False),
        (io.StringIO(), {"FORCE_COLOR": "1"}, True),
        (Tty(), {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
    ],
)
def test_use_colour(stream: io.StringIO, env: dict[str, str], expected: bool) -> None:
    assert table.use_colour(stream, env) is expected


def test_unknown_format_is_refused() -> None:
    assert FORMATS == ("table", "json", "sarif", "html")
    with pytest.raises(ValueError, match="unknown format"):
        render(sample_report(), "xml")


def test_summary_counts_findings_and_rules_apart() -> None:
    report = sample_report()
    failed_rules = {f.rule_id for f in report.findings if f.failed}
    passed_rules = (
        {f.rule_id for f in report.findings}
        - failed_rules
        - {f.rule_id for f in report.findings if f.skipped}
    )
    last = render(report, "table").splitlines()[-1]
    assert f"{len(report.failed)} findings (" in last
    assert f"from {len(failed_rules)} failed rules; {len(passed_rules)} rules passed" in last
    summary = json.loads(render(report, "json"))["summary"]
    assert summary["rules_failed"] == len(failed_rules) < summary["failed"]
    assert summary["rules_passed"] == len(passed_rules)
