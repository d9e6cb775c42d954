"""Cursor pagination: `?limit=&starting_after=` -> `{"items": [...], "next_starting_after": ...}`.

`limit` is 1..100 (audit logs 1..1000); the document gives no default, the sandbox uses 10.
Items come in ascending cursor order and a page holds the items whose cursor sorts after
`starting_after`, so a deleted cursor item does not break a listing. A full page always carries
`next_starting_after`, even when nothing follows (the next page is then empty), as the real API
may: clients must stop on an empty `items`, not on a missing cursor.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from instantly_sandbox.validation import query_int

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
AUDIT_MAX_LIMIT = 1000

T = TypeVar("T")


def parse_limit(query: Mapping[str, str], *, maximum: int = MAX_LIMIT) -> int:
    value = query_int(query, "limit", minimum=1, maximum=maximum)
    return DEFAULT_LIMIT if value is None else value


def page(
    items: Iterable[T],
    cursor_of: Callable[[T], str],
    *,
    limit: int,
    starting_after: str | None,
) -> tuple[list[T], str | None]:
    """The page after `starting_after` of `items` sorted by `cursor_of`."""
    ordered = sorted(items, key=cursor_of)
    start = 0
    if starting_after is not None:
        start = bisect.bisect_right([cursor_of(item) for item in ordered], starting_after)
    chunk = ordered[start : start + limit]
    cursor = cursor_of(chunk[-1]) if chunk and len(chunk) == limit else None
    return chunk, cursor


def list_body(items: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"items": items}
    if cursor is not None:
        body["next_starting_after"] = cursor
    return body
