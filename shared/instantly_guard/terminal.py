"""Text that is safe to print on a terminal: what a workspace controls is shown, never obeyed.

A member's display name, an audit entry's IP address, an invitee's email domain or a webhook's
event type are chosen by whoever controls the workspace. Printed raw, an escape sequence in one
can erase or rewrite lines on the operator's terminal (ESC/CSI `\\x1b[2K`, `\\x1b[1A`), retitle it
or plant a link (OSC `\\x1b]...\\x07`), ring it (BEL), or overwrite what came before (CR,
backspace); a newline can forge a line that looks like ours; a bidirectional override (U+202E)
reorders what is shown. `safe` writes each such character as its Python escape (`\\x1b`, `\\r`,
`\\u202e`), visible and inert; lone surrogates too (`\\ud800`), which no UTF-8 terminal could be
sent. Every text output applies it to every value it did not write itself (check table, CLI
tables and fields, outbox). JSON, SARIF and HTML escape by their own rules.
"""

from __future__ import annotations

import re
from typing import Any, Final

_UNSAFE: Final = re.compile(
    "["
    "\x00-\x1f\x7f-\x9f"  # C0 and C1 controls: ESC, CSI (0x9b), BEL, CR, LF, BS, TAB, ...
    "\u2028\u2029"  # line and paragraph separators
    "\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\ud800-\udfff"  # lone surrogates
    "]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: Any) -> str:
    """`str(value)` with every control character, escape-sequence introducer, bidirectional
    override and lone surrogate written as its escape (module docstring)."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)
