"""Operations of Instantly API v2 and the scopes they accept, from the generated table.

An operation is named "METHOD /path/template" without the `/api/v2` prefix, exactly as the
OpenAPI document writes the path: "GET /audit-logs", "DELETE /api-keys/{id}",
"POST /supersearch-enrichment/" (trailing slash included).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from instantly_guard.errors import ConfigError
from instantly_guard.scopes import _generated
from instantly_guard.scopes.errors import UnknownOperationError
from instantly_guard.scopes.matching import accepted_by
from instantly_guard.scopes.scope import KEY_SCOPES, Scope, Scopes, parse_scopes

OPERATIONS: Final[Mapping[str, tuple[Scope, ...]]] = MappingProxyType(
    {
        operation: tuple(Scope(*text.split(":", 1)) for text in scopes)
        for operation, scopes in _generated.OPERATIONS.items()
    }
)
"""Every operation -> the scopes it accepts, in the document's order (least privilege first).
An empty tuple: the document lists no scope, so any valid key may call it."""

UNSCOPED_OPERATIONS: Final[frozenset[str]] = frozenset(
    operation for operation, scopes in OPERATIONS.items() if not scopes
)
"""Operations for which the document lists no scope (27 in API 2.0.0, e.g. "GET /webhooks")."""


def required_scope(operation: str) -> Scope | None:
    """The specific scope an operation needs (`R:A`, the least privileged it accepts), or None
    when it lists none. May be a scope no key can hold (see `OPERATION_ONLY_RESOURCES`)."""
    accepted = _accepted([operation])[operation]
    return min(accepted, key=lambda scope: scope.breadth) if accepted else None


def allows(held: Scopes, operation: str) -> bool:
    """True when a key holding `held` may call `operation`. An operation that lists no scope
    is allowed to any valid key. Raises `UnknownOperationError` for an unknown operation."""
    accepted = _accepted([operation])[operation]
    return not accepted or not parse_scopes(held).isdisjoint(accepted)


def missing_for(held: Scopes, operations: Iterable[str]) -> dict[str, tuple[Scope, ...]]:
    """The operations `held` does not allow, each with the scopes that would allow it (any one
    is enough; least privilege first). Empty when everything is allowed. Input order is kept."""
    have = parse_scopes(held)
    return {
        operation: accepted
        for operation, accepted in _accepted(operations).items()
        if accepted and have.isdisjoint(accepted)
    }


def minimal_scopes(operations: Iterable[str]) -> frozenset[Scope]:
    """The smallest set of key scopes that allows every operation in `operations`.

    For each operation the least privileged scope a key can hold is chosen (`R:A` before
    `R:all` before `all:A` before `all:all`); operations that list no scope need nothing.
    Scopes are never widened: a resource needing create, read, update and delete gets those
    four, not `R:all`. A chosen scope that another chosen scope already grants is dropped,
    which only happens when an operation can be reached through `all:A` alone (the
    `supersearch_enrichments` operations need `all:read` or `all:create`).

    Raises `UnknownOperationError` naming every unknown operation.
    """
    chosen: set[Scope] = set()
    for operation, accepted in _accepted(operations).items():
        holdable = [scope for scope in accepted if scope in KEY_SCOPES]
        if holdable:
            chosen.add(min(holdable, key=lambda scope: scope.breadth))
        elif accepted:
            # Unreachable with API 2.0.0 (every list ends in all:all); refuse rather than
            # return a set that does not cover the operation.
            raise ConfigError(f"{operation}: no scope a key can hold is accepted")
    return frozenset(
        scope
        for scope in chosen
        if not any(other != scope and other in accepted_by(scope) for other in chosen)
    )


def _accepted(operations: Iterable[str]) -> dict[str, tuple[Scope, ...]]:
    """operation -> accepted scopes, in input order; every unknown operation reported at once."""
    found: dict[str, tuple[Scope, ...]] = {}
    unknown: list[str] = []
    for operation in operations:
        if operation in OPERATIONS:
            found[operation] = OPERATIONS[operation]
        elif operation not in unknown:
            unknown.append(operation)
    if unknown:
        problems = [f"unknown operation {op!r}{_did_you_mean(op)}" for op in unknown]
        problems.append(
            "operations are written 'METHOD /path' as in the OpenAPI document, without /api/v2:"
            " e.g. 'GET /audit-logs', 'DELETE /api-keys/{id}'"
        )
        raise UnknownOperationError(problems, operations=unknown)
    return found


def _did_you_mean(operation: str) -> str:
    method, _, path = operation.strip().partition(" ")
    # Common slips: the /api/v2 prefix (the table leaves it out) and a lower-case method.
    guess = f"{method.upper()} {path.strip().removeprefix('/api/v2')}"
    if guess not in OPERATIONS:
        close = difflib.get_close_matches(guess, OPERATIONS, n=1, cutoff=0.8)
        if not close:
            return ""
        guess = close[0]
    return f" (did you mean {guess!r}?)"
