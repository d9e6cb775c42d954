"""Reporters: a readable table (colour on a terminal), JSON, SARIF 2.1.0 for code scanning, and a
self-contained HTML page."""

from __future__ import annotations

from typing import Final

from instantly_guard.check.model import Report
from instantly_guard.check.report import html, json, sarif, table

FORMATS: Final = ("table", "json", "sarif", "html")


def render(report: Report, fmt: str, *, colour: bool = False) -> str:
    """`report` in format `fmt` (one of FORMATS), ending with a newline."""
    if fmt == "table":
        return table.render(report, colour=colour)
    if fmt == "json":
        return json.render(report)
    if fmt == "sarif":
        return sarif.render(report)
    if fmt == "html":
        return html.render(report)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "render"]
