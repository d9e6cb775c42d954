"""`--format json`: one document with the run's context, counts and every finding.

    {"tool": "instantly-guard", "version": "...", "taken_at": "...Z", "target": "<API base>",
     "workspace": "<name>", "repository": "<path>",
     "summary": {"passed": n, "failed": n, "skipped": n, "critical": n, "high": n, ...,
                 "rules_failed": n, "rules_passed": n, "rules_skipped": n},
     "findings": [{"rule_id", "title", "severity", "status", "passed", "skipped",
                   "evidence", "fix", "subject", "location": {"path", "line"} | null}, ...]}

`summary` counts findings by status and failed findings per severity (`passed`, `failed`,
`skipped`, `critical` ...), and rules by outcome (`rules_failed`, `rules_passed`, `rules_skipped`). Stable key order, two-space indent.
"""

from __future__ import annotations

import json as _json
from typing import Any

from instantly_guard import __version__
from instantly_guard.check.model import Report


def document(report: Report) -> dict[str, Any]:
    return {
        "tool": "instantly-guard",
        "version": __version__,
        "taken_at": report.taken_at.isoformat().replace("+00:00", "Z"),
        "target": report.target,
        "workspace": report.workspace_name,
        "repository": report.repository,
        "summary": report.counts() | report.rule_counts(),
        "findings": [finding.as_dict() for finding in report.findings],
    }


def render(report: Report) -> str:
    return _json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"
