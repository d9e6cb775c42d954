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
    "findings",
    "changes",
    "secrets",
    "rotate",
    "webhooks",
    "verify",
    "localstack",
    "demo",
)


_DEVELOPMENT_PARTS = ("instantly_sandbox", "instantly_guard.localstack")
# What `pip install 'instantly-guard[cli]'` adds (pyproject's optional-dependencies).
_CLI_EXTRA = ("detect_secrets",)


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
    """Parse `argv`, run the chosen subcommand, and map errors to one stderr line and the exit-code
    table of `cli.output` (2 usage/configuration, 3 upstream/transient, 1 operation failed)."""
    from instantly_guard.cli import output
    from instantly_guard.terminal import safe

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except GuardError as exc:
        # An error may quote what Instantly or a workspace sent: one inert line.
        print(f"instantly-guard: {safe(exc)}", file=sys.stderr)
        return output.exit_code_for(exc)
    except BrokenPipeError:
        # The reader went away (`check --list-rules | head`): say nothing more, and keep Python
        # from failing again when it flushes stdout at exit.
        _silence_stdout()
        return output.EXIT_BROKEN_PIPE
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
        # The repository scan's detector is the `cli` extra: installed without it (a plain
        # `pip install`, a pre-commit hook whose additional_dependencies were replaced), say so.
        if (exc.name or "").startswith(_CLI_EXTRA):
            print(
                f"instantly-guard: `{args.command}` needs the cli extra (detect-secrets is not "
                "installed): install instantly-guard[cli] as the README's Install section shows, "
                "or keep detect-secrets in the pre-commit hook's additional_dependencies",
                file=sys.stderr,
            )
            return output.EXIT_USAGE
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("google.auth"):
            # No Application Default Credentials (GUARD_BACKEND=gcp on a laptop): one line.
            print(
                f"instantly-guard: no Google credentials for GUARD_BACKEND=gcp ({_first_line(exc)}"
                "); run `gcloud auth application-default login`, or set GUARD_BACKEND=local",
                file=sys.stderr,
            )
            return output.EXIT_USAGE
        raise
    return code


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
