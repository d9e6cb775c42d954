"""`instantly-guard localstack` (what `make run` runs): the sandbox and the five functions.

Starts the Instantly sandbox (seeded demo workspace) and the webhook, audit-export and
key-rotation functions under functions-framework with the local backends, provisions the secrets
(`instantly_guard.localstack.provision`), points the demo webhook at the local receiver, writes
<state dir>/stack.json and prints a short guide. Ctrl-C (or SIGTERM) stops everything.
Ports: 8700 sandbox, 8701 webhook, 8702 audit export, 8703 rotation, 8704 reconcile, 8705
inventory (--base-port or one flag each).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from instantly_guard.localstack.stack import LocalStack

# localstack.stack's DEFAULT_BASE_PORT (a test keeps them equal): importing that module for a
# constant would load the Instantly client into every `instantly-guard --help`.
DEFAULT_BASE_PORT: Final = 8700


def _port(text: str) -> int:
    """A TCP port a user may ask for: 1024-65535 (0 would mean "any" to the sandbox only)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port in 1024-65535")
    return port


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `localstack` and `demo` (which may start a stack of its own)."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".guard"),
        help="where the stack keeps its state and logs (default .guard)",
    )
    parser.add_argument(
        "--base-port",
        type=_port,
        default=DEFAULT_BASE_PORT,
        help=f"sandbox port; the functions take the next five (default {DEFAULT_BASE_PORT})",
    )
    for name in ("sandbox", "webhook", "export", "rotation", "reconcile", "inventory"):
        parser.add_argument(f"--{name}-port", type=_port, help=f"override the {name} port")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "localstack",
        help="run the sandbox and the five functions locally (make run)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    parser.set_defaults(handler=run)


def build_stack(args: argparse.Namespace) -> LocalStack:
    from instantly_guard.localstack.stack import LocalStack, Ports

    base = Ports.from_base(args.base_port)
    ports = Ports(
        sandbox=args.sandbox_port or base.sandbox,
        webhook=args.webhook_port or base.webhook,
        export=args.export_port or base.export,
        rotation=args.rotation_port or base.rotation,
        reconcile=args.reconcile_port or base.reconcile,
        inventory=args.inventory_port or base.inventory,
    )
    return LocalStack(args.state_dir, ports)


class _StopRequestedError(Exception):
    """Raised in the main thread by the first SIGINT/SIGTERM."""


def run(args: argparse.Namespace) -> int:
    from instantly_guard.localstack import guide
    from instantly_guard.logs import configure_logging

    configure_logging("WARNING", stream=sys.stderr)
    stack = build_stack(args)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            raise _StopRequestedError

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        print(f"starting the local stack (state in {args.state_dir}) ...", flush=True)
        info = stack.start()
        sys.stdout.write(guide.render(info, stack.notes))
        sys.stdout.flush()
        while not stopping.wait(0.5):
            dead = stack.dead_child()
            if dead is not None:
                print(
                    f"\n{dead.name} exited unexpectedly (status {dead.process.poll()}); its log "
                    f"({dead.log_path}) ends with:\n{dead.log_tail()}\nstopping the stack",
                    file=sys.stderr,
                )
                code = 1
                break
    except _StopRequestedError:
        pass
    finally:
        # A second Ctrl-C must not interrupt the shutdown and leave children behind.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        started = bool(stack.children)
        if started:
            print("\nstopping the local stack ...", flush=True)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started:
            print("stopped.", flush=True)
    return code
