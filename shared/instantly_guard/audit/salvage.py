"""Making any parsed JSON value exportable: what one audit entry cannot be allowed to do is stop
the export (issue 18: one `"\\ud800"` or a 300-deep `audit_metadata` failed every run).

A value the client could parse may still not be writable:
- a lone surrogate (`"\\ud800"` is valid JSON, but no UTF-8 can encode it): such a string is kept
  with the surrogate written as the escape text `\\ud800`;
- nesting deeper than `MAX_DEPTH`: Cloud Logging's `jsonPayload` is a protobuf `Struct`, and
  protobuf's recursion limit (100 messages; each JSON level costs a Struct, a map entry and a
  Value) refuses deeper ones, as does pydantic's serializer past a few hundred. The subtree at
  that depth is kept as its JSON text (ASCII, so surrogates escaped);
- a float that JSON cannot carry (NaN, infinities): kept as its text.

The entry records what was done under `SALVAGE_MARKER` (`{"problems": [...]}`, field paths and
reasons, never values) and carries the label `salvaged: "true"`. Nothing is dropped: the huge
strings that remain too big are cut by `entries.fit_payload`, which marks that too.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MAX_DEPTH: Final = 30
SALVAGE_MARKER: Final = "_salvaged"
_MAX_PROBLEMS: Final = 20
_MAX_PATH: Final = 120


def salvage(value: Any) -> tuple[Any, list[str]]:
    """`value` made writable (module docstring) and the problems found, in order."""
    problems: list[str] = []
    return _clean(value, 0, "$", problems), problems


def too_deep(text: str) -> bool:
    """Whether the JSON `text` may nest deeper than `MAX_DEPTH` (cheap: brackets are counted
    first, so a typical entry costs two C-level scans)."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}]":
            depth -= 1
    return deepest > MAX_DEPTH


def _note(problems: list[str], path: str, what: str) -> None:
    if len(problems) < _MAX_PROBLEMS:
        problems.append(f"{path[:_MAX_PATH]}: {what}")
    elif len(problems) == _MAX_PROBLEMS:
        problems.append("...: more problems not listed")


def _text(value: str, path: str, problems: list[str]) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        _note(problems, path, "lone surrogate kept as escape text")
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def _as_json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):
        return repr(value).encode("ascii", "backslashreplace").decode()


def _clean(value: Any, depth: int, path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        return _text(value, path, problems)
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            _note(problems, path, f"nested deeper than {MAX_DEPTH} levels, kept as JSON text")
            return _as_json_text(value)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = _text(str(k), path, problems)
                out[key] = _clean(v, depth + 1, f"{path}.{key}", problems)
            return out
        return [_clean(v, depth + 1, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        _note(problems, path, "number JSON cannot carry, kept as text")
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(str(value), path, problems)
