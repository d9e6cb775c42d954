"""Following Instantly's cursor pagination (`?limit=&starting_after=` -> `next_starting_after`).

Stop rules, from what the API does rather than what it documents:
- an empty `items` ends the listing, even when the page still carries a cursor (a last page may);
- a page without a cursor ends it too;
- a cursor seen before means the server is going round in circles: UnexpectedResponseError,
  rather than a loop that never ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel

from instantly_guard.errors import UnexpectedResponseError
from instantly_guard.instantly.models import Page

ItemT = TypeVar("ItemT", bound=BaseModel)

LIMIT_MAX = 100
AUDIT_LOG_LIMIT_MAX = 1000


def check_limit(limit: int, maximum: int = LIMIT_MAX) -> int:
    """`limit` if it is within the documented 1..maximum; ValueError before any request otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValueError(f"limit must be an integer from 1 to {maximum}, got {limit!r}")
    return limit


def follow(
    fetch: Callable[[str | None], Page[ItemT]], *, method: str, path: str
) -> Iterator[list[ItemT]]:
    """Yield the non-empty `items` of each page; `fetch(cursor)` gets one page (None: the first)."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = fetch(cursor)
        if not page.items:
            return
        yield page.items
        cursor = page.next_starting_after
        if not cursor:
            return
        if cursor in seen:
            raise UnexpectedResponseError(
                f"pagination cursor {cursor!r} came back after {len(seen)} pages; stopping "
                "instead of looping",
                method=method,
                path=path,
            )
        seen.add(cursor)
