"""`instantly-guard sandbox`: serve the local Instantly API v2 stand-in until SIGINT or SIGTERM.

When ready it prints exactly one JSON line on stdout, then nothing more:
`{"base_url": "http://127.0.0.1:PORT/api/v2", "control_url": ".../_sandbox",
  "keys": {"admin": {"id": ..., "key": ..., "scopes": ["all:all"]}, ...}}`
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run a local Instantly API v2 sandbox (for tests and the local stack)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--seed", choices=("demo", "empty"), default="demo")
    parser.add_argument(
        "--listing-order",
        choices=("asc", "desc", "random"),
        default="asc",
        help="order of GET /audit-logs pages (the real order is undocumented)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="PER_S",
        help="answer 429 past this many requests per second (default: no limit)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instantly_sandbox import Sandbox  # never imported by the deployed functions

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # A long-running server: keep no response record (it exists for the contract tests).
    sandbox = Sandbox(
        seed=args.seed,
        listing_order=args.listing_order,
        rate_limit_per_s=args.rate_limit,
        record_responses=False,
    )
    try:
        sandbox.start(args.host, args.port)
        ready = {
            "base_url": sandbox.base_url,
            "control_url": sandbox.control_url,
            "keys": {name: key.to_json() for name, key in sandbox.keys.items()},
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
