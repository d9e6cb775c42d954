"""`--format sarif`: SARIF 2.1.0 (OASIS), the format code-scanning dashboards ingest.

- `tool.driver.rules`: every rule, with `shortDescription` (its title), `fullDescription` and
  `help` (why it matters and the fix), `defaultConfiguration.level` and, for GitHub,
  `properties.security-severity` (a CVSS-like number) and `tags`.
- `results`: failed findings only (a dashboard shows every result as an alert). `level` from the
  severity: critical and high -> error, medium -> warning, low and info -> note.
- Locations: a repository finding points at its file (and line) under `%SRCROOT%`; a workspace
  finding points at the artifact `instantly-workspace`, with the resource (`api-key/<id>`,
  `webhook/<id>`, ...) as a logical location, because dashboards require a location per result.
- `partialFingerprints` (rule + resource) let a dashboard follow one problem across runs.
- Skipped rules (a missing scope, an option not configured) become tool execution notifications.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

from instantly_guard import __version__
from instantly_guard.check.model import Finding, Report, Severity
from instantly_guard.check.rules import ALL_RULES, Rule

SCHEMA_URI: Final = "https://json.schemastore.org/sarif-2.1.0.json"
WORKSPACE_ARTIFACT: Final = "instantly-workspace"
INFORMATION_URI: Final = "https://github.com/instantly-guard/instantly-guard"

LEVELS: Final = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
SECURITY_SEVERITY: Final = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}


def document(report: Report) -> dict[str, Any]:
    index = {rule.id: i for i, rule in enumerate(ALL_RULES)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "instantly-guard",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(rule) for rule in ALL_RULES],
            }
        },
        "invocations": [_invocation(report, index)],
        "results": [_result(f, index) for f in report.findings if f.failed],
        "columnKind": "unicodeCodePoints",
    }
    if report.repository:
        run["originalUriBaseIds"] = {
            "%SRCROOT%": {"uri": Path(report.repository).resolve().as_uri() + "/"}
        }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render(report: Report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"


def _rule(rule: Rule) -> dict[str, Any]:
    area = rule.section.value
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.replace(".", "-").split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.help},
        "help": {
            "text": f"{rule.help}\n\nFix: {rule.fix}",
            "markdown": f"{rule.help}\n\n**Fix:** {rule.fix}",
        },
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "severity": str(rule.severity),
            "tags": ["security", "instantly", area],
            "precision": "high",
        },
    }


def _result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "level": LEVELS[finding.severity],
        "message": {"text": f"{finding.evidence}. Fix: {finding.fix}"},
        "locations": [_location(finding)],
        "partialFingerprints": {"instantlyGuardFinding/v1": _fingerprint(finding)},
        "properties": {"severity": str(finding.severity)},
    }
    if finding.rule_id in index:
        result["ruleIndex"] = index[finding.rule_id]
    return result


def _location(finding: Finding) -> dict[str, Any]:
    if finding.location is not None:
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": finding.location.path, "uriBaseId": "%SRCROOT%"}
        }
        if finding.location.line:
            physical["region"] = {"startLine": finding.location.line}
        return {"physicalLocation": physical}
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": WORKSPACE_ARTIFACT}}
    }
    if finding.subject:
        location["logicalLocations"] = [
            {"name": finding.subject, "fullyQualifiedName": finding.subject, "kind": "resource"}
        ]
    return location


def _fingerprint(finding: Finding) -> str:
    anchor = finding.subject or finding.evidence
    return hashlib.sha256(f"{finding.rule_id}|{anchor}".encode()).hexdigest()


def _invocation(report: Report, index: dict[str, int]) -> dict[str, Any]:
    notifications = [
        {
            "level": "warning",
            "message": {"text": f"{f.rule_id} skipped: {f.evidence}"},
            "associatedRule": {"id": f.rule_id, "index": index[f.rule_id]}
            if f.rule_id in index
            else {"id": f.rule_id},
        }
        for f in report.findings
        if f.skipped
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": True,
        "endTimeUtc": report.taken_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation
