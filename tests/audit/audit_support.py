"""Helpers for the audit-export tests: records, a page source over a list, test sinks."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.listing import CursorPage
from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.errors import BackendError
from instantly_guard.instantly.models import AuditLog
from instantly_sandbox.ids import to_ms, uuid7_from_parts

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A settable clock; `advance` moves it; `tick` is added on every read."""

    def __init__(self, now: datetime = T0, tick: timedelta = timedelta(0)) -> None:
        self.now = now
        self.tick = tick
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            value = self.now
            self.now += self.tick
            return value

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


_counter = iter(range(1, 10**9))


def record(
    at: datetime, activity_type: int = 1, *, entry_id: str | None = None, **fields: Any
) -> AuditLog:
    """An AuditLog at `at` with a UUIDv7 id of that millisecond (unique per call)."""
    return AuditLog(
        id=entry_id or uuid7_from_parts(to_ms(at), next(_counter)),
        timestamp=at,
        organization_id="org-1",
        activity_type=activity_type,
        ip_address="192.0.2.1",
        from_api=True,
        **fields,
    )


def spread(
    n: int, start: datetime, step: timedelta, activity_types: Sequence[int] = (1,)
) -> list[AuditLog]:
    return [record(start + i * step, activity_types[i % len(activity_types)]) for i in range(n)]


class ListSource:
    """A `PageSource` over a mutable list, honouring UTC-day filters like the sandbox does.

    `order`: asc, desc, or random (reshuffled on every listing: stricter than any real API).
    `on_page(index)` runs after each page is produced (to add entries mid-run).
    `cursors=True`: pages carry a cursor (the last id) that `starting_after` continues from, as
    the real client's do; a random order is then one fixed permutation (a keyed hash of the id,
    as the sandbox's), so a listing resumed from a cursor goes on where it was.
    """

    def __init__(
        self,
        records: list[AuditLog] | None = None,
        *,
        page_size: int = 100,
        order: str = "random",
        seed: int = 7,
        on_page: Callable[[int], None] | None = None,
        cursors: bool = False,
    ) -> None:
        self.cursors = cursors
        self.records = list(records or [])
        self.page_size = page_size
        self.order = order
        self.rng = random.Random(seed)
        self.on_page = on_page
        self.listings: list[tuple[date, date | None]] = []
        self.pages_served = 0
        self.fail: Exception | None = None

    def _key(self, entry: AuditLog) -> tuple[Any, ...]:
        if self.order in ("asc", "desc"):
            return (entry.timestamp, entry.id)
        rank = hashlib.blake2b(entry.id.encode(), key=b"list-source", digest_size=8).digest()
        return (rank, entry.id)

    def pages(
        self, *, start_date: date, end_date: date | None, starting_after: str | None = None
    ) -> Iterator[Sequence[AuditLog]]:
        self.listings.append((start_date, end_date))
        if self.cursors:
            return self._cursor_pages(start_date, end_date, starting_after)
        assert starting_after is None, "a source without cursors was given one"
        return self._plain_pages(start_date, end_date)

    def _cursor_pages(
        self, start_date: date, end_date: date | None, after: str | None
    ) -> Iterator[Sequence[AuditLog]]:
        chosen = sorted(
            (
                r
                for r in self.records
                if r.timestamp.date() >= start_date
                and (end_date is None or r.timestamp.date() <= end_date)
            ),
            key=self._key,
            reverse=self.order == "desc",
        )
        keys = [self._key(r) for r in chosen]
        begin = 0
        if after is not None:
            (last,) = [r for r in self.records if r.id == after]
            if self.order == "desc":
                begin = sum(1 for k in keys if k >= self._key(last))
            else:
                begin = bisect.bisect_right(keys, self._key(last))
        for index in range(begin, len(chosen), self.page_size):
            if self.fail is not None:
                raise self.fail
            self.pages_served += 1
            page = chosen[index : index + self.page_size]
            more = index + self.page_size < len(chosen)
            yield CursorPage(page, page[-1].id if more else None)
            if self.on_page is not None:
                self.on_page(self.pages_served)

    def _plain_pages(self, start_date: date, end_date: date | None) -> Iterator[Sequence[AuditLog]]:
        chosen = [
            r
            for r in self.records
            if r.timestamp.date() >= start_date
            and (end_date is None or r.timestamp.date() <= end_date)
        ]
        if self.order == "asc":
            chosen.sort(key=lambda r: (r.timestamp, r.id))
        elif self.order == "desc":
            chosen.sort(key=lambda r: (r.timestamp, r.id), reverse=True)
        else:
            self.rng.shuffle(chosen)
        for index in range(0, len(chosen), self.page_size):
            if self.fail is not None:
                raise self.fail
            self.pages_served += 1
            yield chosen[index : index + self.page_size]
            if self.on_page is not None:
                self.on_page(self.pages_served)


class MemorySink:
    """Keeps written entries; `fail_after` makes the sink write that many more entries and then
    raise (a crash in the middle of a batch)."""

    def __init__(self) -> None:
        self.entries: list[ExportEntry] = []
        self.batches: list[int] = []
        self.fail_after: int | None = None
        self.lock = threading.Lock()

    def write(self, entries: Sequence[ExportEntry]) -> None:
        with self.lock:
            if self.fail_after is not None:
                room = self.fail_after
                if room < len(entries):
                    self.entries.extend(entries[:room])
                    self.fail_after = None
                    raise BackendError("sink crashed mid-batch")
                self.fail_after -= len(entries)
            self.entries.extend(entries)
            self.batches.append(len(entries))

    def describe(self) -> str:
        return "memory"

    @property
    def ids(self) -> list[str]:
        return [e.insert_id for e in self.entries]

    def unique_ids(self) -> set[str]:
        return set(self.ids)

    def rewrites(self) -> int:
        """Entries written more than once (Cloud Logging collapses them by insertId)."""
        return sum(count - 1 for count in Counter(self.ids).values())


class CrashingSink:
    """Wraps a sink: after `fail_after` more entries it writes part of a batch and raises."""

    def __init__(self, inner: Any, fail_after: int) -> None:
        self.inner = inner
        self.fail_after: int | None = fail_after

    def write(self, entries: Sequence[ExportEntry]) -> None:
        if self.fail_after is not None and self.fail_after < len(entries):
            self.inner.write(entries[: self.fail_after])
            self.fail_after = None
            raise BackendError("sink crashed mid-batch")
        if self.fail_after is not None:
            self.fail_after -= len(entries)
        self.inner.write(entries)

    def describe(self) -> str:
        return "crashing"


def jsonl_ids(path: Path) -> list[str]:
    return [entry["insertId"] for entry in read_entries(path)]


def assert_exact(
    written: Sequence[str], expected: Sequence[str] | set[str], *, max_rewrites: int = 0
) -> None:
    """The distinct written ids are exactly `expected`; at most `max_rewrites` repeated writes."""
    unique = set(written)
    expected = set(expected)
    missing = expected - unique
    extra = unique - expected
    assert not missing, f"{len(missing)} entries never exported"
    assert not extra, f"{len(extra)} entries exported that do not exist"
    rewrites = len(written) - len(unique)
    assert rewrites <= max_rewrites, f"{rewrites} entries written more than once"


def local_env(sb: Any, state_dir: Path, monkeypatch: Any | None = None) -> dict[str, str]:
    """The environment of a local-backend export against sandbox `sb`; with `monkeypatch`, also
    set in `os.environ` after clearing every AUDIT_/GUARD_/INSTANTLY_ variable."""
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.keys["admin"].key,
    }
    if monkeypatch is not None:
        clear_guard_env(monkeypatch)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    return env


def clear_guard_env(monkeypatch: Any) -> None:
    for name in [n for n in os.environ if n.startswith(("AUDIT_", "GUARD_", "INSTANTLY_"))]:
        monkeypatch.delenv(name)


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Undo what a CLI run or a function's cold start did to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
