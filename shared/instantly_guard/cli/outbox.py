"""`instantly-guard outbox`: print the local webhook outbox, one JSON line per event, oldest first."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from instantly_guard.publish.local import read_outbox


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "outbox",
        help="print the events the local webhook receiver accepted (GUARD_BACKEND=local)",
        description="Print every event in <state dir>/outbox/ as one JSON line, oldest first.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $GUARD_STATE_DIR or .guard)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or Path(os.environ.get("GUARD_STATE_DIR") or ".guard")
    for message in read_outbox(state_dir):
        sys.stdout.write(json.dumps(message.as_json(), ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0
