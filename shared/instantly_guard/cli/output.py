"""What every `instantly-guard` command prints, and the one exit-code table they share.

    0  ok
    1  findings (check) or the operation failed (a rotation that did not rotate, a sweep error)
    2  usage or configuration: a bad flag, a missing setting, an unknown secret, a rejected key
    3  upstream or transient: Instantly or Google unreachable, 5xx, 429; running again may help
  141  the reader closed the pipe (`... | head`), as a shell reports SIGPIPE

Output: `--format text` is for a person, `--format json` for a program; the default (`auto`) is
text on a terminal and JSON otherwise, so scripts piping a command keep a stable shape. JSON goes
to stdout as one document (or one line per item for streams such as `outbox`); messages and
errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import IO, Any, Final

from instantly_guard.terminal import safe

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UPSTREAM: Final = 3
EXIT_BROKEN_PIPE: Final = 141

FORMATS: Final = ("auto", "text", "json")


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """`--format auto|text|json` (default auto: text on a terminal, JSON otherwise)."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="text for a person, json for a program (default auto: text on a terminal)",
    )


def wants_json(args: argparse.Namespace, stream: IO[str] | None = None) -> bool:
    """Whether the command chosen by `args` should print JSON on `stream` (stdout by default)."""
    fmt = getattr(args, "format", "auto")
    if fmt == "json":
        return True
    if fmt == "text":
        return False
    isatty = getattr(stream or sys.stdout, "isatty", None)
    return not (isatty and isatty())


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """`data` as JSON, keys sorted; non-ASCII escaped so any terminal or pipe can take it (a lone
    surrogate from a payload cannot be encoded as UTF-8, but `\\ud800` always can)."""
    return json.dumps(data, indent=indent, sort_keys=True, default=str, ensure_ascii=True)


def emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    """Print `data` as JSON or as `text(data)` according to `args.format`."""
    body = to_json(data) if wants_json(args) else terminal_text(text(data).rstrip("\n"))
    sys.stdout.write(body + "\n")
    sys.stdout.flush()


def terminal_text(text: str) -> str:
    """Text made for a terminal, line by line: the line breaks are ours, everything else in a
    line is shown escaped if it could act on the terminal (`instantly_guard.terminal`)."""
    return "\n".join(safe(line) for line in text.split("\n"))


def fields(pairs: list[tuple[str, Any]]) -> str:
    """Aligned `name  value` lines, None shown as `-`; values terminal-safe (one line each)."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(
        f"{name:<{width}}  {'-' if value is None else safe(value)}" for name, value in pairs
    )


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain left-aligned table with a header row; None shown as `-`."""
    cells = [[("-" if c is None else safe(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def exit_code_for(exc: BaseException) -> int:
    """The table's code for an error a command let escape."""
    from instantly_guard.errors import (
        AuthenticationError,
        BackendError,
        ConfigError,
        InstantlyError,
        PaymentRequiredError,
        PermissionDeniedError,
        ScopeError,
    )
    from instantly_guard.secrets.base import SecretNotFoundError

    if isinstance(exc, ConfigError | SecretNotFoundError):
        return EXIT_USAGE
    if type(exc).__name__ == "WorkspaceUnreadableError":  # check.collect's; not imported for this
        return EXIT_UPSTREAM if getattr(exc, "retryable", False) else EXIT_USAGE
    if isinstance(exc, AuthenticationError | ScopeError | PaymentRequiredError):
        return EXIT_USAGE  # the key or the plan: configuration, not something a retry fixes
    if isinstance(exc, PermissionDeniedError):
        return EXIT_USAGE
    if isinstance(exc, InstantlyError | BackendError):
        return EXIT_UPSTREAM if exc.retryable else EXIT_FAILED
    return EXIT_FAILED
