"""A page source that lists an ascending backfill as day windows, several at a time.

One listing of `GET /audit-logs` is a chain of cursors: one request per round trip, however
many the rate share would allow (under 150 ms of latency a 30-day backfill ran at a fifth of its
share). Day windows have no such chain between them, so they can be listed side by side. The
exporter still sees one listing, in the order it would have had:

- Window k is the query (day_k, end_date) with the caller's own `end_date`: it lists the same
  entries as the caller's query from day_k on, in the same order. Its end is found, not assumed
  (the API's day boundaries are in an undocumented timezone, its `end_date` inclusive or not):
  window k is cut at the first entry of window k+1 (the `marker`: the same entry, or anything
  dated after it). What window k held before the marker is what the caller's listing holds
  between window k's first entry and window k+1's; nothing falls between two windows.
- Windows are used only once the first page shows an ascending order (`listing.classify`), and
  only for a range of at least `min_days` days (a caught-up run lists as before: one query).
  Any other order is passed through untouched: one listing, no extra request.
- Every page's cursor names its window (`iw1|<day>|<cursor>`): the exporter stores it like any
  other, and a resumed run (after a time budget, Ctrl-C or a kill) lists that window from that
  cursor, then the windows after it. A page's cursor never passes an entry not yet handed over,
  so the checkpoint built on them never skips one. Nor one still to come: a page names the next
  window only once that window holds an entry (before, the day in the API's timezone may still
  be going on, as it is on the UTC date's first hours for a timezone behind UTC); the tail
  window's pages keep their own cursors, and its last page none, as a single listing's would.
- Memory: at most `in_flight` windows fetch at once, each at most `window_pages` pages ahead of
  the page being written, plus the first page of the next window (its marker): the service
  gives each `WINDOW_PAGES` (6), about 100 MiB at most. A day larger than that is partly listed in
  the background and the rest one page per round trip when its turn comes: speed for days of a
  few thousand entries, memory always.
- Cost: one extra, partly used page per window at most (the page that reaches the marker).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any, Final

from instantly_guard.audit.entries import as_utc
from instantly_guard.audit.listing import (
    CursorPage,
    Order,
    PageSource,
    classify,
    next_cursor,
    restarted,
)
from instantly_guard.instantly.models import AuditLog

_PREFIX: Final = "iw1|"
IN_FLIGHT: Final = 6
"""Windows listed at once: 6 round trips of 150-200 ms stay within the export's 25 requests/s."""


WINDOW_PAGES: Final = 6
"""Pages each window may hold ahead: 36 pages of 1,000 entries (about 2.4 MiB each) in all."""


_POLL_S: Final = 0.05


def window_cursor(day: date, cursor: str | None) -> str:
    """The cursor of a page of the window starting at `day` (None: its start)."""
    return f"{_PREFIX}{day.isoformat()}|{cursor or ''}"


def parse_window_cursor(text: str) -> tuple[date, str | None] | None:
    """(window day, inner cursor) of a cursor from `window_cursor`, None for any other text."""
    if not text.startswith(_PREFIX):
        return None
    day, sep, inner = text[len(_PREFIX) :].partition("|")
    try:
        start = date.fromisoformat(day)
    except ValueError:
        return None
    return (start, inner or None) if sep else None


class _Window:
    """One day window listed by its own thread into a queue, `slots` pages ahead of the reader.

    `first` is set once the first page (or the end, or an error) is known; `marker` is then the
    window's first entry (None: the window is empty). `cut` (set by the reader) is the next
    window's marker, so this thread stops fetching once a page reaches it."""

    def __init__(
        self, inner: PageSource, day: date, end: date | None, cursor: str | None, slots: int
    ) -> None:
        self.day = day
        self._inner = inner
        self._query: dict[str, Any] = {"start_date": day, "end_date": end}
        if cursor is not None:
            self._query["starting_after"] = cursor
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.slots = threading.Semaphore(slots)
        self.first = threading.Event()
        self.marker: AuditLog | None = None
        self.error: Exception | None = None
        self.next: _Window | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-window", daemon=True)
        self._thread.start()

    def widen(self, slots: int) -> None:
        """Let the thread fetch `slots` more pages ahead (a window promoted from marker-only)."""
        for _ in range(slots):
            self.slots.release()

    def stop(self) -> None:
        self._stop.set()

    def _slot(self) -> bool:
        while not self._stop.is_set():
            if self.slots.acquire(timeout=_POLL_S):
                return True
        return False

    def _reaches_next(self, page: Sequence[AuditLog]) -> bool:
        following = self.next
        if following is None or not following.first.is_set() or following.marker is None:
            return False
        return _cut(page, following.marker) < len(page)

    def _run(self) -> None:
        pages: Iterator[Sequence[AuditLog]] | None = None
        try:
            pages = iter(self._inner.pages(**self._query))
            while self._slot():
                page = next(pages, None)
                if page is None:
                    break
                if not self.first.is_set():
                    self.marker = page[0] if page else None
                    self.first.set()
                self.queue.put(("page", page))
                if self._reaches_next(page):
                    break
        except Exception as exc:  # handed to the reader, raised where it consumes this window
            self.error = exc
            self.queue.put(("error", exc))
        finally:
            self.first.set()
            self.queue.put(("end", None))
            close = getattr(pages, "close", None)
            if callable(close):
                close()


def _cut(page: Sequence[AuditLog], marker: AuditLog) -> int:
    """How many entries of `page` come before the next window's first entry `marker`."""
    stamp = as_utc(marker.timestamp)
    for index, record in enumerate(page):
        if record.id == marker.id or as_utc(record.timestamp) > stamp:
            return index
    return len(page)


class WindowedPageSource:
    """`PageSource` that lists an ascending backfill as concurrent day windows (module doc)."""

    def __init__(
        self,
        inner: PageSource,
        *,
        today: Callable[[], date],
        in_flight: int = IN_FLIGHT,
        window_pages: int = 3,
        min_days: int = 3,
    ) -> None:
        if in_flight < 1 or window_pages < 1:
            raise ValueError("in_flight and window_pages must be >= 1")
        self._inner = inner
        self._today = today
        self._in_flight = in_flight
        self._window_pages = window_pages
        self._min_days = min_days

    def pages(
        self, *, start_date: date, end_date: date | None, starting_after: str | None = None
    ) -> Iterator[Sequence[AuditLog]]:
        resumed = parse_window_cursor(starting_after) if starting_after is not None else None
        first_day, cursor = resumed if resumed is not None else (start_date, starting_after)
        last_day = end_date if end_date is not None else self._today()
        days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
        if resumed is None and len(days) < self._min_days:
            return self._inner.pages(
                start_date=start_date, end_date=end_date, starting_after=starting_after
            )
        return self._windows(days or [first_day], end_date, cursor)

    def _windows(
        self, days: list[date], end: date | None, cursor: str | None
    ) -> Iterator[Sequence[AuditLog]]:
        windows = [
            _Window(self._inner, day, end, cursor if n == 0 else None, 1)
            for n, day in enumerate(days)
        ]
        for window, following in itertools.pairwise(windows):
            window.next = following
        started = widened = 0

        def advance(current: int) -> None:
            """Windows current .. current+in_flight-1 fetch ahead; the one after, its marker."""
            nonlocal started, widened
            full = min(len(windows), current + self._in_flight)
            for window in windows[widened:full]:
                window.widen(self._window_pages - 1)  # each starts with one slot
            widened = max(widened, full)
            upto = min(len(windows), full + 1)
            for window in windows[started:upto]:
                window.start()
            started = max(started, upto)

        try:
            windows[0].start()
            started = 1
            ascending = False
            for index, window in enumerate(windows):
                if index > 0:
                    advance(index)
                for item in self._read(window, ascending=ascending):
                    if isinstance(item, bool):  # the first page's verdict on the order
                        ascending = item
                        if ascending:
                            advance(0)
                        continue
                    yield item
                if not ascending:
                    return  # passed through: the first window was the whole listing
        finally:
            for window in windows:
                window.stop()

    @staticmethod
    def _read(window: _Window, *, ascending: bool) -> Iterator[CursorPage | bool]:
        """The pages of `window` up to the next window's marker, with window cursors; before
        the first page of a listing not yet known to ascend, whether it does (True/False)."""
        verdict_due = not ascending and window.next is not None
        while True:
            kind, value = window.queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            window.slots.release()
            page: Sequence[AuditLog] = value
            if verdict_due:
                verdict_due = False
                ascending = classify([as_utc(r.timestamp) for r in page]) is Order.ASC
                yield ascending
            following = window.next if ascending else None
            keep = len(page)
            if following is not None:
                following.first.wait()
                if following.error is not None:
                    # Listing on would cost requests past the cut this window cannot see.
                    raise following.error
                if following.marker is None:
                    # Nothing dated on or after the next day yet: this window is the listing's
                    # tail, and its day (in the API's timezone) may still be going on. A cursor
                    # naming the next window would skip what this day has still to record.
                    following = None
                else:
                    keep = _cut(page, following.marker)
            inner = next_cursor(page)
            reached = keep < len(page)
            if reached or inner is None:
                after = window_cursor(following.day, None) if following is not None else None
            else:
                after = window_cursor(window.day, inner)
            if keep:
                yield CursorPage(page[:keep], after, restarted=restarted(page))
            if reached:
                return
