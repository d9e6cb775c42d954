"""`instantly-guard findings`: the findings log the detection rules wrote, oldest first.

Locally (GUARD_BACKEND=local, the default) the log is `<state dir>/audit/instantly-guard-findings
.jsonl`, written by the audit export; deployed, it is Cloud Logging's log of the same name (read it
with `gcloud logging read`, as the command says). `--format text` prints each finding on a few
lines (severity, rule, technique, message, the audit entries it rests on, the fix); `--format
json` one JSON object per finding. The default is text on a terminal, JSON otherwise. Text from
Instantly (user names, key names) is printed with control characters escaped.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from instantly_guard.cli import output
from instantly_guard.detections.model import Severity
from instantly_guard.detections.settings import DEFAULT_FINDINGS_LOG
from instantly_guard.errors import ConfigError

_SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: s.rank)]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "findings",
        help="print the findings of the detection rules (the export writes them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $GUARD_STATE_DIR or .guard)",
    )
    parser.add_argument(
        "--severity",
        choices=_SEVERITIES,
        default="info",
        help="only findings at or above this severity (default: all)",
    )
    parser.add_argument(
        "--rule", action="append", default=[], help="only this rule id (repeatable)"
    )
    output.add_format_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: the sinks' module loads pydantic (`instantly-guard --help` stays fast).
    from instantly_guard.audit.service import findings_path
    from instantly_guard.audit.sinks.local import read_entries

    log_name = os.environ.get("AUDIT_FINDINGS_LOG") or DEFAULT_FINDINGS_LOG
    if (os.environ.get("GUARD_BACKEND") or "local").lower() == "gcp":
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "PROJECT"
        raise ConfigError(
            f"with GUARD_BACKEND=gcp the findings are in Cloud Logging: gcloud logging read "
            f"'logName=\"projects/{project}/logs/{log_name}\"' --project {project}"
        )
    state_dir: Path = args.state_dir or Path(os.environ.get("GUARD_STATE_DIR") or ".guard")
    path = findings_path(state_dir, log_name)
    floor = Severity(args.severity).rank
    rules = set(args.rule)
    found = []
    for entry in read_entries(path, unique=True):
        finding = entry.get("jsonPayload")
        if not isinstance(finding, dict):
            continue
        severity = finding.get("severity")
        if severity not in _SEVERITIES or Severity(severity).rank < floor:
            continue
        if rules and finding.get("rule") not in rules:
            continue
        found.append(finding)
    if output.wants_json(args):
        for finding in found:
            sys.stdout.write(output.to_json(finding, indent=None) + "\n")
        sys.stdout.flush()
        return output.EXIT_OK
    if not found:
        print(f"no findings in {path}", file=sys.stderr)
        return output.EXIT_OK
    for finding in found:
        sys.stdout.write(_text(finding) + "\n")
    counts = Counter(str(f.get("severity")) for f in found)
    parts = ", ".join(f"{counts[s]} {s}" for s in reversed(_SEVERITIES) if counts[s])
    sys.stdout.write(f"{len(found)} findings ({parts})\n")
    sys.stdout.flush()
    return output.EXIT_OK


def _safe(value: Any) -> str:
    """A value from the log on one terminal line: control characters (an escape sequence in a
    user name written by whoever controls it) shown as escapes, never interpreted."""
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _text(finding: dict[str, Any]) -> str:
    ids = [str(i) for i in finding.get("audit_entry_ids") or []]
    shown = ", ".join(ids[:3]) + (f" (+{len(ids) - 3} more)" if len(ids) > 3 else "")
    lines = [
        f"{_safe(finding.get('first_event_at', '?'))}  "
        f"{_safe(finding.get('severity', '?')).upper():<8}  {_safe(finding.get('rule', '?'))}"
        f"  {_safe(finding.get('technique') or '-')}",
        f"    {_safe(finding.get('message', ''))}",
        f"    entries: {_safe(shown or '-')}",
        f"    fix: {_safe(finding.get('fix', ''))}",
    ]
    return "\n".join(lines)
