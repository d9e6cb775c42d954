"""A page source that fetches pages in the background while the exporter writes.

The exporter lists a window, then writes it; listing is network-bound and writing is CPU- and
sink-bound, so done one after the other a run costs their sum. Before writing a window the
exporter calls `prefetch(next window)` (or `prefetch(this listing)` before streaming it): a thread
starts fetching those pages, at most `depth` ahead of the page being written (memory stays
bounded), and the next `pages()` call for that same query (window and cursor) is served from it.
A `pages()` call for any other window discards the prefetch (the exporter passes over a day again
after a cut, or stops). One page ahead is the default: it overlaps one request with the writing
of one page, and memory is two pages; a deeper queue only helps when requests are faster than
writing, and then the run is bound by writing anyway. Pages are handed over in the order the
inner source gives them and errors are raised where the exporter consumes them, so the
exporter's logic and guarantees are unchanged; only the waiting overlaps.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

from instantly_guard.audit.listing import PageSource
from instantly_guard.instantly.models import AuditLog

Window = tuple[date, date | None, str | None]  # start_date, end_date, starting_after


class _Fetch:
    """One background listing of one window.

    Memory: a page is fetched only once a slot is free, and a slot frees when the consumer takes
    a page, so at most `depth` pages wait beside the one being written (the fetch of a page
    never starts while an earlier one sits in the producer's hands).
    """

    def __init__(
        self,
        inner: PageSource,
        window: Window,
        depth: int,
        last_page: Callable[[Sequence[AuditLog]], bool] | None = None,
    ) -> None:
        self.window = window
        self._last_page = last_page
        self._pages: Iterator[Sequence[AuditLog]] | None = None
        self._inner = inner
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-readahead", daemon=True)
        self._thread.start()

    def _slot(self) -> bool:
        """Wait for room for one more page; False once cancelled."""
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.05):
                return True
        return False

    def _run(self) -> None:
        try:
            self._pages = _inner_pages(self._inner, self.window)
            while self._slot():
                page = next(self._pages, None)
                if page is None:
                    self._queue.put(("end", None))
                    return
                last = self._last_page is not None and self._last_page(page)
                self._queue.put(("page", page))
                del page  # the queue holds it now; the consumer lets it go once written
                if last:
                    # The consumer will likely stop here: fetching on could waste requests.
                    # If it does want more, it goes on with the same listing itself.
                    self._queue.put(("pause", None))
                    return
        except Exception as exc:  # handed to the consumer, raised in its thread
            self._queue.put(("error", exc))

    def drain(self) -> Iterator[Sequence[AuditLog]]:
        try:
            while True:
                kind, value = self._queue.get()
                if kind == "end":
                    return
                if kind == "pause":
                    self._thread.join()
                    if self._pages is not None:
                        yield from self._pages
                    return
                if kind == "error":
                    raise value
                self._slots.release()
                yield value
                del value
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop and wait for the thread (at most the page request it is in the middle of)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


class ReadAheadSource:
    """Wraps a `PageSource`; see the module doc. Not for concurrent use by several runs."""

    def __init__(self, inner: PageSource, *, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._inner = inner
        self._depth = depth
        self._pending: _Fetch | None = None
        self._lock = threading.Lock()

    def prefetch(
        self,
        *,
        start_date: date,
        end_date: date | None,
        starting_after: str | None = None,
        last_page: Callable[[Sequence[AuditLog]], bool] | None = None,
    ) -> None:
        """Start fetching this query in the background (replacing any earlier prefetch of
        another query; one of the same query is kept). `last_page(page)` True: the consumer
        will stop after that page, so nothing after it is fetched."""
        with self._lock:
            if self._pending is not None and self._pending.window == (
                start_date,
                end_date,
                starting_after,
            ):
                return
            previous, self._pending = self._pending, None
        if previous is not None:
            previous.cancel()
        fetch = _Fetch(self._inner, (start_date, end_date, starting_after), self._depth, last_page)
        with self._lock:
            self._pending = fetch

    def pages(
        self, *, start_date: date, end_date: date | None, starting_after: str | None = None
    ) -> Iterator[Sequence[AuditLog]]:
        window = (start_date, end_date, starting_after)
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            if pending.window == window:
                return pending.drain()
            pending.cancel()
        return _inner_pages(self._inner, window)

    def cancel(self) -> None:
        """Discard any prefetch (the run is over)."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()


def _inner_pages(inner: PageSource, window: Window) -> Iterator[Sequence[AuditLog]]:
    start, end, after = window
    if after is None:  # sources without cursors take no `starting_after`
        return inner.pages(start_date=start, end_date=end)
    return inner.pages(start_date=start, end_date=end, starting_after=after)
