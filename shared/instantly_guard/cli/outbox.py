"""`instantly-guard outbox`: the events the local webhook receiver accepted, oldest first.

`--format json` prints one JSON line per event (non-ASCII escaped, so an event holding a lone
surrogate such as "\\ud800" prints like any other); `--format text` one short line per event.
The default is text on a terminal, JSON otherwise. A file that cannot be read is reported on
stderr and skipped, never the end of the listing; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from instantly_guard.cli import output
from instantly_guard.publish.local import read_outbox
from instantly_guard.terminal import safe


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "outbox",
        help="print the events the local webhook receiver accepted (GUARD_BACKEND=local)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $GUARD_STATE_DIR or .guard)",
    )
    output.add_format_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or Path(os.environ.get("GUARD_STATE_DIR") or ".guard")
    if not state_dir.is_dir():
        # Nothing to read is not "no events": a wrong path must not pass for an empty outbox.
        print(
            f"instantly-guard outbox: no state directory at {state_dir} (pass --state-dir or set "
            "GUARD_STATE_DIR to the one the receiver writes; `make run` uses .guard)",
            file=sys.stderr,
        )
        return output.EXIT_USAGE
    as_json = output.wants_json(args)
    problems: list[str] = []
    count = 0
    for message in read_outbox(state_dir, problems=problems):
        view = message.as_json()
        line = output.to_json(view, indent=None) if as_json else _text(view)
        sys.stdout.write(line + "\n")
        count += 1
    sys.stdout.flush()
    for problem in problems:
        print(f"instantly-guard outbox: skipped {problem}", file=sys.stderr)
    if not as_json and count == 0 and not problems:
        print(f"no events in {state_dir / 'outbox'}", file=sys.stderr)
    return output.EXIT_FAILED if problems else output.EXIT_OK


def _text(view: dict[str, Any]) -> str:
    data = view.get("data")
    kind = data.get("event_type") if isinstance(data, dict) else None
    body = output.to_json(data, indent=None) if "data" in view else "(not JSON)"
    if len(body) > 100:
        body = body[:99] + "…"
    # The event type and body are what the workspace sent: shown, never obeyed by the terminal.
    return safe(f"{view['published_at']}  {kind or '-':<20}  {view['id']}  {body}")
