"""`--format table`: one block per rule, failures first in severity order, for a person to read.

    FAIL  critical  keys.full-access  Keys with all:all outside development
                    - key 'admin' (id 0190...) holds all:all
                    fix: Create a least-privilege key for each integration ...

Colour (ANSI) only when asked: the CLI turns it on for a terminal, never when NO_COLOR is set
(https://no-color.org) or TERM is dumb; FORCE_COLOR turns it on for CI logs that render ANSI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO

from instantly_guard.check.model import Finding, Report, Severity
from instantly_guard.terminal import safe

_RESET = "\033[0m"
_STATUS_COLOUR = {"fail": "\033[31m", "pass": "\033[32m", "skip": "\033[33m"}
_SEVERITY_COLOUR = {
    Severity.CRITICAL: "\033[1;31m",
    Severity.HIGH: "\033[31m",
    Severity.MEDIUM: "\033[33m",
    Severity.LOW: "\033[36m",
    Severity.INFO: "\033[2m",
}
_DIM = "\033[2m"
_BOLD = "\033[1m"
_STATUS_ORDER = {"fail": 0, "skip": 1, "pass": 2}


def use_colour(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """Colour for a terminal, unless NO_COLOR is set; FORCE_COLOR forces it."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def render(report: Report, *, colour: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    lines = [paint(_header(report), _BOLD), ""]
    groups: dict[str, list[Finding]] = {}
    for finding in report.findings:
        groups.setdefault(finding.rule_id, []).append(finding)
    ordered = sorted(
        groups.values(),
        key=lambda g: (_STATUS_ORDER[g[0].status], -g[0].severity.rank),
    )
    id_width = max((len(rule_id) for rule_id in groups), default=0)
    indent = " " * 16
    for group in ordered:
        first = group[0]
        status = paint(f"{first.status.upper():<4}", _STATUS_COLOUR[first.status])
        severity = paint(f"{first.severity!s:<8}", _SEVERITY_COLOUR[first.severity])
        lines.append(
            f"{status}  {severity}  {safe(first.rule_id):<{id_width}}  {safe(first.title)}"
        )
        for finding in group:
            # Evidence quotes the workspace (display names, IPs, domains): shown, never obeyed.
            lines.append(f"{indent}- {safe(finding.evidence)}")
        if first.status != "pass":
            for fix in dict.fromkeys(f.fix for f in group):
                lines.append(paint(f"{indent}fix: {safe(fix)}", _DIM))
    lines += ["", summary(report)]
    return "\n".join(lines) + "\n"


def _header(report: Report) -> str:
    parts = ["instantly-guard check"]
    if report.workspace_name:
        parts.append(f"workspace '{safe(report.workspace_name)}'")
    if report.target:
        parts.append(safe(report.target))
    if report.repository:
        parts.append(f"repository {safe(report.repository)}")
    parts.append(report.taken_at.strftime("%Y-%m-%d %H:%M UTC"))
    return " | ".join(parts)


def summary(report: Report) -> str:
    """`14 findings (4 critical, 6 high, ...) from 9 failed rules; 3 rules passed, 2 skipped`:
    findings and rules counted apart (a rule fails once however many findings it has)."""
    counts = report.counts()
    rules = report.rule_counts()
    by_severity = ", ".join(f"{counts[str(s)]} {s}" for s in reversed(Severity) if counts[str(s)])
    found = plural(counts["failed"], "finding") + (f" ({by_severity})" if by_severity else "")
    failed = f"{found} from {plural(rules['rules_failed'], 'failed rule')}"
    return f"{failed}; {plural(rules['rules_passed'], 'rule')} passed, {rules['rules_skipped']} skipped"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
