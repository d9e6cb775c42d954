"""`instantly-guard demo` (what `make demo` runs): a scripted walkthrough of the local stack.

Uses the stack `make run` started (found through <state dir>/stack.json). When none is running,
it starts one for the duration of the demo and stops it afterwards, so `make demo` works alone.
Exit status 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from instantly_guard.cli.localstack import add_stack_arguments, build_stack


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="walk through the local stack: webhooks, export, rotation, check (make demo)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    parser.set_defaults(handler=run)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from instantly_guard.localstack import state
    from instantly_guard.localstack.demo import run_demo
    from instantly_guard.logs import configure_logging

    configure_logging("WARNING", stream=sys.stderr)
    info = state.running(args.state_dir)
    if info is not None:
        return 0 if run_demo(info, sys.stdout) else 1

    stack = build_stack(args)
    print(
        "No local stack is running (start one with `make run` to keep it up); "
        "starting one for this demo ...",
        flush=True,
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        info = stack.start()
        ok = run_demo(info, sys.stdout)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
        print("The demo's stack is stopped.", flush=True)
    return 0 if ok else 1
