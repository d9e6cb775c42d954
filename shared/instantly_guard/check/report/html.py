"""`--format html`: one self-contained page for a person: findings by severity, evidence, fixes.

No script, no web font, no image, no link to anything: the page opens from a file or a CI
artifact with no network, and a strict Content-Security-Policy (`default-src 'none'`, inline
style only) says so to the browser. Every value is HTML-escaped (evidence is our text, but holds
names and paths from the workspace and the repository).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from instantly_guard import __version__
from instantly_guard.check.model import Finding, Report, Severity
from instantly_guard.check.report.table import summary

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f5f6f8; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .8; }
main { padding: 16px 32px 40px; max-width: 1100px; }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0 8px; }
.count { background: #fff; border-radius: 8px; padding: 10px 16px; min-width: 90px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); border-top: 4px solid #999; }
.count b { display: block; font-size: 24px; }
.count.critical { border-color: #8b0000; } .count.high { border-color: #d9342b; }
.count.medium { border-color: #e69b00; } .count.low { border-color: #2b7bd9; }
.count.info { border-color: #888; } .count.passed { border-color: #2e8b57; }
.count.skipped { border-color: #b0a000; }
h2 { margin: 28px 0 10px; font-size: 18px; }
.rule { background: #fff; border-radius: 8px; margin: 10px 0; padding: 12px 16px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); border-left: 6px solid #999; }
.rule.critical { border-color: #8b0000; } .rule.high { border-color: #d9342b; }
.rule.medium { border-color: #e69b00; } .rule.low { border-color: #2b7bd9; }
.rule.info { border-color: #888; } .rule.pass { border-color: #2e8b57; }
.rule.skip { border-color: #b0a000; }
.rule h3 { margin: 0; font-size: 16px; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; text-transform: uppercase;
         padding: 1px 8px; border-radius: 10px; color: #fff; background: #888; margin-right: 6px; }
.badge.critical { background: #8b0000; } .badge.high { background: #d9342b; }
.badge.medium { background: #e69b00; } .badge.low { background: #2b7bd9; }
.badge.pass { background: #2e8b57; } .badge.skip { background: #b0a000; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; color: #555; }
ul { margin: 8px 0; padding-left: 20px; }
li { margin: 2px 0; word-break: break-word; }
.fix { background: #eef4ff; border-radius: 6px; padding: 8px 12px; margin-top: 8px; }
footer { color: #777; font-size: 13px; padding: 0 32px 24px; }
"""


def render(report: Report) -> str:
    counts = report.counts()
    groups: dict[str, list[Finding]] = {}
    for finding in report.findings:
        groups.setdefault(finding.rule_id, []).append(finding)
    failed = [g for g in groups.values() if any(f.failed for f in g)]
    skipped = [g for g in groups.values() if g not in failed and any(f.skipped for f in g)]
    passed = [g for g in groups.values() if g not in failed and g not in skipped]

    tiles = [
        *(
            _tile(str(s), counts[str(s)], f"{s} finding{'s' * (counts[str(s)] != 1)}")
            for s in reversed(Severity)
            if s is not Severity.INFO or counts[str(s)]
        ),
        _tile("passed", len(passed), "rules passed"),
        _tile("skipped", len(skipped), "rules skipped"),
    ]
    sections = []
    for severity in reversed(Severity):
        these = [g for g in failed if g[0].severity is severity]
        if these:
            title = f"{str(severity).capitalize()} ({sum(len(_fails(g)) for g in these)})"
            sections.append(_section(title, these))
    if skipped:
        sections.append(_section(f"Could not be checked ({len(skipped)})", skipped))
    if passed:
        sections.append(_section(f"Passed ({len(passed)})", passed))
    where = [
        f"workspace {report.workspace_name}" if report.workspace_name else "",
        report.target or "",
        f"repository {report.repository}" if report.repository else "",
        report.taken_at.strftime("%Y-%m-%d %H:%M UTC"),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>instantly-guard check</title>\n"
        f"<style>{_CSS}</style></head>\n<body>\n"
        "<header><h1>instantly-guard check</h1>"
        f"<p>{escape(' · '.join(w for w in where if w))}</p></header>\n<main>\n"
        f'<div class="summary">{"".join(tiles)}</div>\n'
        f'<p id="summary">{escape(summary(report))}</p>\n'
        + "\n".join(sections)
        + f"\n</main>\n<footer>instantly-guard {escape(__version__)}</footer>\n</body></html>\n"
    )


def _fails(group: list[Finding]) -> list[Finding]:
    return [f for f in group if f.failed]


def _tile(kind: str, number: int, label: str) -> str:
    return f'<div class="count {escape(kind)}"><b>{number}</b>{escape(label)}</div>'


def _section(title: str, groups: Iterable[list[Finding]]) -> str:
    return (
        f"<section><h2>{escape(title)}</h2>\n" + "\n".join(_rule(g) for g in groups) + "</section>"
    )


def _rule(group: list[Finding]) -> str:
    first = group[0]
    shown = _fails(group) or group
    status = "fail" if _fails(group) else first.status
    css = str(first.severity) if status == "fail" else status
    badge = str(first.severity) if status == "fail" else status
    items = "".join(
        f"<li>{escape(f.evidence)}"
        + (
            f" <code>{escape(f.location.path)}:{f.location.line}</code>"
            if f.location is not None
            else ""
        )
        + "</li>"
        for f in shown
    )
    fixes = (
        ""
        if status == "pass"
        else "".join(
            f'<div class="fix"><b>Fix:</b> {escape(fix)}</div>'
            for fix in dict.fromkeys(f.fix for f in shown)
        )
    )
    return (
        f'<article class="rule {escape(css)}">'
        f'<h3><span class="badge {escape(badge)}">{escape(badge)}</span>{escape(first.title)} '
        f"<code>{escape(first.rule_id)}</code></h3>"
        f"<ul>{items}</ul>{fixes}</article>"
    )
