"""Pages of `GET /audit-logs` as the exporter sees them, and what their order says.

Instantly documents neither the order of the audit listing nor what its cursor is ("a UUID, a
timestamp, or an email depending on the specific API"). So a cursor is kept as the opaque text
Instantly answered, only ever passed back as `starting_after` of the same query, and the order is
read from the pages themselves (`classify`): a trusted order is one the timestamps show over at
least `MIN_STEPS` steps without a single step the other way; anything else is `unordered`.

A saved cursor can go bad (Instantly answered 500 to a `starting_after` it never issued, in a
real report; a 400 is as plausible). Failing on it would stop every run for good, so a listing
resumed from a saved cursor that is rejected restarts once from its date bounds, with a
WARNING, and marks its first page `restarted` (the exporter then skips what it already wrote).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from instantly_guard.errors import InvalidRequestError, ServerError, UnexpectedResponseError
from instantly_guard.instantly.models import AuditLog

_log = logging.getLogger("instantly_guard.audit")

MIN_STEPS = 16
"""Steps (neighbours with different timestamps) a page must show, all one way, before its order
is trusted: a random order passes that test with probability 1/16! (about 5e-14)."""

PROBE_ENTRIES = 100
"""Entries the exporter's probe reads on to, however small the pages, while the pages read show
too few steps to tell an order (a day window cuts a page at a UTC midnight, and a sparse day's
window holds a few entries): a few small pages, within the two pages' worth it may hold."""


class Order(StrEnum):
    ASC = "asc"  # oldest first: stream and checkpoint as the pages come, resume from a cursor
    DESC = "desc"  # newest first: stop once below the floor, resume a pass from a cursor
    UNORDERED = "unordered"  # no usable order: one pass, each page written as it comes


class CursorPage(list[AuditLog]):
    """A page of entries that also carries the cursor Instantly answered with it."""

    __slots__ = ("next_cursor", "restarted")

    def __init__(
        self, items: Iterable[AuditLog], next_cursor: str | None, *, restarted: bool = False
    ) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor
        self.restarted = restarted  # the first page after a rejected saved cursor


def restarted(page: Sequence[AuditLog]) -> bool:
    """Whether `page` starts a listing again from its date bounds (its saved cursor was
    rejected): what came before it in the run's plan does not hold."""
    return getattr(page, "restarted", False) is True


def next_cursor(page: Sequence[AuditLog]) -> str | None:
    """The cursor that continues the listing after `page` (None when the source has none)."""
    cursor = getattr(page, "next_cursor", None)
    return cursor if isinstance(cursor, str) and cursor else None


def classify(timestamps: Sequence[datetime]) -> Order | None:
    """The order these consecutive timestamps show, or None when they show too few steps."""
    ups = downs = 0
    for before, after in itertools.pairwise(timestamps):
        if after > before:
            ups += 1
        elif after < before:
            downs += 1
    if ups and downs:
        return Order.UNORDERED
    if ups >= MIN_STEPS:
        return Order.ASC
    if downs >= MIN_STEPS:
        return Order.DESC
    return None


class PageSource(Protocol):
    """Pages of audit entries for a window of API days (`end_date=None`: open-ended).

    `starting_after` is only ever a cursor this source returned on a `CursorPage` of the same
    `start_date`/`end_date`; sources that return plain lists are never given one."""

    def pages(
        self, *, start_date: date, end_date: date | None, starting_after: str | None = None
    ) -> Iterator[Sequence[AuditLog]]: ...


class ClientPageSource:
    """`PageSource` over `InstantlyClient.audit_log_page` (1,000 entries per page)."""

    def __init__(self, client: Any, *, page_size: int = 1000) -> None:
        self._client = client
        self._page_size = page_size

    def pages(
        self, *, start_date: date, end_date: date | None, starting_after: str | None = None
    ) -> Iterator[Sequence[AuditLog]]:
        cursor = starting_after
        seen: set[str] = set()
        resumed, restart = starting_after is not None, False
        while True:
            try:
                page = self._client.audit_log_page(
                    start_date=start_date,
                    end_date=end_date,
                    starting_after=cursor,
                    limit=self._page_size,
                )
            except (InvalidRequestError, ServerError) as exc:
                # 400, or 500 after the retries (what a cursor it never issued got in a real
                # report); 502-504 are an outage, not an answer about the cursor.
                if not resumed or exc.status not in (400, 500):
                    raise
                _log.warning(
                    "audit listing: Instantly rejected the saved cursor (%s); listing again "
                    "from %s",
                    exc.status,
                    start_date.isoformat(),
                )
                cursor, resumed, restart = None, False, True
                continue
            resumed = False
            if not page.items:
                return  # an empty page ends a listing, whatever cursor it carries
            cursor = page.next_starting_after or None
            yield CursorPage(page.items, cursor, restarted=restart)
            restart = False
            if cursor is None:
                return
            if cursor in seen:
                raise UnexpectedResponseError(
                    f"pagination cursor {cursor!r} came back after {len(seen)} pages; stopping "
                    "instead of looping",
                    method="GET",
                    path="/audit-logs",
                )
            seen.add(cursor)
