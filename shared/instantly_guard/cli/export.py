"""`instantly-guard export-audit`: run the audit export by hand, with the function's own code.

Without dates it is one scheduled-style run against the stored checkpoint (what Cloud Scheduler
triggers). With `--since` it is a backfill of the UTC days [since, until] (until: today) that
neither reads nor moves the stored checkpoint; entries exported before collapse in Cloud Logging
by insertId. The backend follows GUARD_BACKEND (gcp: Cloud Logging and the Cloud Storage
checkpoint; local: the JSONL sink and checkpoint under GUARD_STATE_DIR/audit). The key comes from
AUDIT_API_KEY_SECRET or INSTANTLY_API_KEY(_FILE).

Prints the run's JSON summary on stdout; exit code 0 when the run ended as planned, 1 when it
failed (the error is in the summary and logged on stderr), 2 for bad configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime
from typing import Any


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export-audit",
        help="export Instantly's audit log now (a scheduled-style run, or a backfill)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", type=_day, metavar="DATE", help="backfill from this UTC day")
    parser.add_argument(
        "--until", type=_day, metavar="DATE", help="backfill up to this UTC day (default today)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instantly_guard.audit.service import build_service, respond
    from instantly_guard.logs import configure_logging

    if args.until is not None and args.since is None:
        print("instantly-guard: --until needs --since (a backfill)", file=sys.stderr)
        return 2
    if args.since is not None and args.until is not None and args.until < args.since:
        print("instantly-guard: --until is before --since", file=sys.stderr)
        return 2
    if args.since is not None and args.since > datetime.now(UTC).date():
        print("instantly-guard: --since is in the future", file=sys.stderr)
        return 2
    configure_logging(stream=sys.stderr)
    service = build_service(os.environ)
    configure_logging(service.log_level, stream=sys.stderr)
    try:
        if args.since is not None:
            summary = service.backfill(args.since, args.until)
        else:
            summary = service.run()
    finally:
        service.close()
    response = respond(summary, service.key_source)
    print(json.dumps(response.body))
    return 0 if response.status == 200 else 1
