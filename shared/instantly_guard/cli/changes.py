"""`instantly-guard changes`: what the inventory recorded (members, keys, webhooks, block list,
workspace settings), oldest first.

Reads the exported audit log of the local backend (`GUARD_STATE_DIR/audit/instantly-audit.jsonl`,
or `--log FILE`: any file of Cloud Logging `LogEntry` JSON lines, e.g. what
`gcloud logging read ... --format=json` saved, one entry per line). Deployed, the same entries are
in Cloud Logging: `labels.source="inventory"` finds them (docs/inventory.md).

`--since` takes a time (`2026-03-04T12:00:00Z`, `2026-03-04`) or a duration back from now
(`24h`, `7d`). `--format text` prints one line per change; `json` one document with every entry.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from instantly_guard.cli import output
from instantly_guard.errors import ConfigError
from instantly_guard.settings import parse_duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "changes",
        help="print the changes the inventory recorded (members, keys, webhooks, block list)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", default=None, help="a time, or a duration back (24h, 7d)")
    parser.add_argument(
        "--log", type=Path, default=None, help="a JSONL log file (default: the local export's)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $GUARD_STATE_DIR or .guard)",
    )
    output.add_format_argument(parser)
    parser.set_defaults(handler=run)


def parse_since(text: str, now: datetime) -> datetime:
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is neither a time (2026-03-04T12:00:00Z) nor a duration (24h, 7d)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _safe(text: str) -> str:
    """Names come from Instantly (an email, a webhook's name): no control character reaches the
    terminal."""
    return "".join(ch if unicodedata.category(ch)[0] != "C" else f"\\x{ord(ch):02x}" for ch in text)


def _line(entry: dict[str, Any]) -> str:
    from instantly_guard.inventory.history import summary

    payload = entry.get("jsonPayload") or {}
    obj = payload.get("object") or {}
    return _safe(
        f"{payload.get('observed_at', '-')}  {entry.get('severity', '-'):<7}  "
        f"{payload.get('change', '-'):<26}  {obj.get('type', '-')} {obj.get('name', '-')}  "
        f"{summary(payload)}"
    )


def run(args: argparse.Namespace) -> int:
    from instantly_guard.inventory.history import read_changes

    state_dir: Path = args.state_dir or Path(os.environ.get("GUARD_STATE_DIR") or ".guard")
    log = args.log or state_dir / "audit" / "instantly-audit.jsonl"
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    entries = list(read_changes(log, since=since))
    if output.wants_json(args):
        output.emit(args, {"log": str(log), "since": since, "changes": entries}, str)
        return output.EXIT_OK
    for entry in entries:
        sys.stdout.write(_line(entry) + "\n")
    sys.stdout.flush()
    if not entries:
        print(f"no inventory changes in {log}", file=sys.stderr)
    return output.EXIT_OK
