"""Which scopes each operation accepts, straight from the project's generated scope table.

The table (`instantly_guard.scopes`) is generated from the OpenAPI document, so the sandbox
enforces exactly what the document lists: an operation accepts its listed scopes (for `R:A`
that is `R:A`, `R:all`, `all:A`, `all:all`), and an operation that lists none accepts any valid
key. A missing scope is answered the way the real API does (401, not the documented 403), or in
another plausible form (`variants.Variants.scope_error`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from instantly_guard.scopes import KEY_SCOPES as _KEY_SCOPES
from instantly_guard.scopes import OPERATIONS as _OPERATIONS

OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {op: tuple(str(scope) for scope in accepted) for op, accepted in _OPERATIONS.items()}
)
"""Every documented operation ("METHOD /path", no /api/v2) -> its accepted scope strings."""

KEY_SCOPES: Final[frozenset[str]] = frozenset(str(scope) for scope in _KEY_SCOPES)
"""Every scope a key can be created with (the enum of `POST /api-keys`)."""


def missing_scope(operation: str, held: Iterable[str]) -> str | None:
    """None when `held` may call `operation`; otherwise the scope a missing-scope error names:
    the first (least privileged) one the operation accepts."""
    accepted = OPERATIONS.get(operation, ())
    if not accepted or not set(accepted).isdisjoint(held):
        return None
    return accepted[0]
