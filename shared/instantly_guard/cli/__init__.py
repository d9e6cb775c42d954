"""The `instantly-guard` command. One module per subcommand, each exposing `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from instantly_guard import __version__
from instantly_guard.errors import GuardError

# Subcommand modules, imported lazily so `instantly-guard sandbox` does not pay for Google's clients.
COMMANDS: tuple[str, ...] = (
    "sandbox",
    "outbox",
    "export",
    "check",
    "secrets",
    "rotate",
    "localstack",
    "demo",
)


_DEVELOPMENT_PARTS = ("instantly_sandbox", "instantly_guard.localstack")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instantly-guard",
        description="Secure an Instantly.ai integration: scoped keys, rotation, webhooks, audit.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"instantly_guard.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand, and map our errors to a message and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except GuardError as exc:
        print(f"instantly-guard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        # The sandbox and the local stack are development parts, not in the wheel.
        if (exc.name or "").startswith(_DEVELOPMENT_PARTS):
            print(
                f"instantly-guard: `{args.command}` needs the development checkout (the sandbox "
                "and the local stack are not in the installed package): run it from a clone, "
                "e.g. `make run`",
                file=sys.stderr,
            )
            return 2
        raise
    return code


if __name__ == "__main__":
    sys.exit(main())
