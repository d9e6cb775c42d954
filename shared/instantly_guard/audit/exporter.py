"""One export run: Instantly's audit log -> a sink, exactly the new entries, at a cost
proportional to what is new.

The listing order of `GET /audit-logs` is undocumented and a listing is not a snapshot, so the
run reads the order from the pages (`listing.classify`) and trusts it only as far as every page
keeps confirming it:

- ascending: one open-ended listing from the checkpoint's floor (resumed from a remembered
  cursor near the floor), written page by page as it comes; the checkpoint follows each batch;
- descending: one open-ended listing from the newest entry down, written page by page, stopped
  as soon as it is below the floor; a pass cut short (time budget, crash) is remembered in the
  checkpoint (`Descent`) with its cursor and resumed by the next run;
- unordered (or an order a page contradicts): the safe path, one open-ended pass from the
  floor's day (minus the day margin), each page's new entries written as they come (sorted
  within the page); the checkpoint remembers what the pass still owes (`Sweep`) and its cursor,
  and the watermark stays below the pass's start (its `cap`), because an entry created while
  the pass pages can land behind the cursor: the next pass finds it.

An order contradicted mid-run rewinds the checkpoint to where the run started (what was written
since is written again: duplicates, collapsed by insertId, never gaps) and finishes on the safe
path; the checkpoint remembers `unordered` from then on. Memory: one page (and the one read
ahead) on every path, never the backlog; the order probe at most two pages' worth (see
`_probe`). See docs/audit-export.md.

A run ends with a `Summary`; it never raises for Instantly or backend failures: they end the run
with `stopped_reason = failed` and the error attached, for the caller to map to a status.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from instantly_guard.audit.batching import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, batches
from instantly_guard.audit.checkpoint.base import (
    DEFAULT_RECENT_CAP,
    Checkpoint,
    CheckpointStore,
    Descent,
    RunRecord,
    Seek,
    Sweep,
)
from instantly_guard.audit.entries import as_utc, to_export_entry
from instantly_guard.audit.listing import (
    PROBE_ENTRIES,
    ClientPageSource,
    Order,
    PageSource,
    classify,
    next_cursor,
    restarted,
)
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.errors import BackendError, ConflictError, GuardError, InstantlyError
from instantly_guard.instantly.models import AuditLog

__all__ = [
    "ClientPageSource",
    "ExportOptions",
    "Exporter",
    "PageSource",
    "StopReason",
    "Summary",
    "utc_now",
]

_log = logging.getLogger("instantly_guard.audit")

Key = tuple[datetime, str]
Buffer = list[tuple[Key, AuditLog]]

LOGGING_FUTURE_LIMIT = timedelta(hours=23)
"""Cloud Logging refuses entries dated more than a day ahead; past this the entry is written
with the time of the export (its payload keeps Instantly's timestamp)."""


class StopReason(StrEnum):
    COMPLETE = "complete"  # every entry listed up to now is exported
    TIME_BUDGET = "time_budget"  # stopped before the deadline; the next run resumes
    LOST_RACE = "lost_race"  # another run wrote the checkpoint: it owns the export now
    DUPLICATE = "duplicate_delivery"  # this Scheduler run (job + schedule time) already ran
    BUSY = "run_in_progress"  # another run holds a fresh claim on the checkpoint
    FAILED = "failed"  # an Instantly or backend error; `Summary.error` says which
    INTERRUPTED = "interrupted"  # Ctrl-C: what was written is in the checkpoint; rerun resumes


@dataclass(frozen=True, slots=True)
class ExportOptions:
    lookback: timedelta = timedelta(days=7)
    time_budget: timedelta = timedelta(seconds=480)
    overlap: timedelta = timedelta(minutes=5)
    recent_cap: int = DEFAULT_RECENT_CAP
    checkpoint_interval: timedelta = timedelta(seconds=1)
    # How long an unfinished run blocks others after its last sign of life (a checkpoint
    # write, at least every `lease / 3` while it works). None: the default, 3 minutes.
    lease: timedelta | None = None
    max_batch_entries: int = MAX_BATCH_ENTRIES
    max_batch_bytes: int = MAX_BATCH_BYTES
    # Days added on each side of a UTC day's query (the API's date filters are in an unknown
    # timezone): 1 covers any UTC offset if `end_date` is inclusive, 2 an exclusive one too.
    day_margin: int = 1
    # Entries older than now - retention are not written (Cloud Logging would accept and drop
    # them): counted in `beyond_retention`. None: no limit (the JSONL sink keeps everything).
    retention: timedelta | None = None
    # An entry dated more than this ahead of our clock does not move the watermark.
    clock_skew: timedelta = timedelta(minutes=5)
    # False: never trust an order, always the safe path (for comparison, and a way out).
    detect_order: bool = True

    @property
    def effective_lease(self) -> timedelta:
        return self.lease if self.lease is not None else timedelta(minutes=3)


@dataclass
class Summary:
    """What a run did. `to_json()` is the HTTP answer and the CLI's output."""

    run: str
    stopped_reason: StopReason = StopReason.COMPLETE
    exported: int = 0
    duplicates_skipped: int = 0
    late_entries: int = 0
    pages: int = 0
    batches: int = 0
    days: int = 0  # listings (windows) made; the name predates windows wider than a day
    order: str | None = None
    beyond_retention: int = 0
    oldest_beyond_retention: datetime | None = None
    future_entries: int = 0
    watermark: datetime | None = None
    generation: int = 0
    checkpoint_location: str = ""
    duration_ms: int = 0
    # Why a run did nothing: the run holding the checkpoint and when its lease ends.
    blocked_by: dict[str, Any] | None = None
    # Progress through the time span being exported: (start, position, end).
    span: tuple[datetime, datetime, datetime] | None = None
    error: GuardError | None = field(default=None, repr=False)

    @property
    def done_fraction(self) -> float | None:
        if self.span is None:
            return None
        start, position, end = self.span
        total = (end - start).total_seconds()
        if total <= 0:
            return 1.0
        return min(1.0, max(0.0, (position - start).total_seconds() / total))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "run": self.run,
            "stopped_reason": self.stopped_reason.value,
            "exported": self.exported,
            "duplicates_skipped": self.duplicates_skipped,
            "late_entries": self.late_entries,
            "pages": self.pages,
            "batches": self.batches,
            "days": self.days,
            "order": self.order,
            "checkpoint": {
                "watermark": self.watermark.isoformat() if self.watermark else None,
                "generation": self.generation,
                "location": self.checkpoint_location,
            },
            "duration_ms": self.duration_ms,
        }
        if self.beyond_retention:
            body["beyond_retention"] = {
                "entries": self.beyond_retention,
                "oldest": (
                    self.oldest_beyond_retention.isoformat()
                    if self.oldest_beyond_retention
                    else None
                ),
            }
        if self.future_entries:
            body["future_entries"] = self.future_entries
        if self.blocked_by is not None:
            body["blocked_by"] = self.blocked_by
        return body


_RETRYABLE = frozenset({"failed", "abandoned", "interrupted"})
"""Outcomes after which a redelivery of the same Scheduler run must export (it is a retry)."""


class _StopRunError(Exception):
    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _UntrustedOrderError(Exception):
    """A page contradicted the order the run relied on."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class _Run:
    summary: Summary
    record: RunRecord
    checkpoint: Checkpoint
    start: Checkpoint  # as claimed: where an untrusted order rewinds to
    generation: int
    deadline: datetime
    start_watermark: datetime
    saved_at: datetime
    end: datetime  # the end of the span exported (now, or the end of `until`)
    cap: datetime | None = None  # an unordered pass's: the watermark stays at or below it
    dirty: bool = False
    claimed: bool = False


class Exporter:
    """Runs exports from `source` to `sink`, keeping the checkpoint in `store`.

    `progress(summary)` is called after every page and batch (the CLI draws it)."""

    def __init__(
        self,
        source: PageSource,
        sink: LogSink,
        store: CheckpointStore,
        options: ExportOptions | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        progress: Callable[[Summary], None] | None = None,
    ) -> None:
        self._source = source
        self._sink = sink
        self._store = store
        self._options = options or ExportOptions()
        self._clock = clock
        self._progress = progress
        if self._options.day_margin < 0:
            raise ValueError("day_margin must be >= 0")

    @property
    def options(self) -> ExportOptions:
        return self._options

    def run(self, *, run_key: str | None = None, until: date | None = None) -> Summary:
        """Export what is new. `run_key` (`job@schedule-time`) deduplicates Scheduler deliveries;
        `until` (a backfill) stops after that UTC day instead of following the log to now."""
        started = self._now()
        key = run_key or f"run:{uuid.uuid4()}"
        summary = Summary(run=key, checkpoint_location=self._store.describe())
        run: _Run | None = None
        try:
            run = self._claim(summary, key, started, until, deduplicate=run_key is not None)
            self._export(run, until)
            self._finish(run, StopReason.COMPLETE)
        except _StopRunError as stop:
            summary.stopped_reason = stop.reason
            if run is not None and stop.reason is StopReason.TIME_BUDGET:
                try:
                    self._finish(run, StopReason.TIME_BUDGET)
                except _StopRunError as lost:  # the final checkpoint write lost the race
                    summary.stopped_reason = lost.reason
        except (InstantlyError, BackendError) as exc:
            summary.stopped_reason = StopReason.FAILED
            summary.error = exc
            self._release(run, "failed")
        except KeyboardInterrupt:
            # Ctrl-C on the CLI: keep what was written (the checkpoint says so) and say so.
            summary.stopped_reason = StopReason.INTERRUPTED
            self._release(run, "interrupted")
        except BaseException:
            self._release(run, "failed")
            raise
        finally:
            cancel = getattr(self._source, "cancel", None)
            if callable(cancel):
                cancel()  # a read-ahead of a window this run will not use
            summary.duration_ms = int((self._now() - started).total_seconds() * 1000)
        return summary

    # -- claim and release ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return as_utc(self._clock())

    def _claim(
        self, summary: Summary, key: str, now: datetime, until: date | None, *, deduplicate: bool
    ) -> _Run:
        state, generation = self._store.read()
        checkpoint = state or Checkpoint.starting_at(now - self._options.lookback)
        summary.watermark, summary.generation = checkpoint.watermark, generation
        summary.order = checkpoint.order
        lease = self._options.effective_lease
        if deduplicate and (previous := checkpoint.run(key)) is not None:
            finished_ok = previous.finished_at is not None and previous.outcome not in _RETRYABLE
            in_progress = previous.finished_at is None and now - previous.alive_at < lease
            if finished_ok or in_progress:
                raise _StopRunError(StopReason.DUPLICATE)
        active = checkpoint.active_run(now, lease)
        if active is not None and active.key != key:
            summary.blocked_by = {
                "run": active.key,
                "started_at": active.started_at.isoformat(),
                "last_seen_at": active.alive_at.isoformat(),
                "lease_until": (active.alive_at + lease).isoformat(),
            }
            raise _StopRunError(StopReason.BUSY)
        for stale in checkpoint.runs:
            if stale.finished_at is None and stale.key != key:
                # Its lease ran out (crashed, killed at its timeout): it no longer blocks anyone.
                _log.warning(
                    "audit export: run %s stopped showing signs of life at %s; taking over",
                    stale.key,
                    stale.alive_at.isoformat(),
                )
                checkpoint = checkpoint.with_run(
                    replace(stale, finished_at=now, outcome="abandoned"), now
                )
        record = RunRecord(key=key, started_at=now, heartbeat_at=now)
        checkpoint = checkpoint.with_run(record, now)
        try:
            generation = self._store.write(checkpoint, generation)
        except ConflictError as exc:
            raise _StopRunError(StopReason.LOST_RACE) from exc
        summary.generation = generation
        end = now if until is None else min(now, _day_start(until + timedelta(days=1)))
        summary.span = (checkpoint.floor, checkpoint.floor, max(end, checkpoint.floor))
        return _Run(
            summary=summary,
            record=record,
            checkpoint=checkpoint,
            start=checkpoint,
            generation=generation,
            deadline=now + self._options.time_budget,
            start_watermark=checkpoint.watermark,
            saved_at=now,
            end=end,
            claimed=True,
        )

    def _save(self, run: _Run, *, force: bool = False) -> None:
        now = self._now()
        if not (force or (run.dirty and now - run.saved_at >= self._options.checkpoint_interval)):
            return
        if run.record.finished_at is None:  # every write is also a heartbeat
            run.record = replace(run.record, heartbeat_at=now)
            run.checkpoint = run.checkpoint.with_run(run.record, now)
        try:
            run.generation = self._store.write(run.checkpoint, run.generation)
        except ConflictError as exc:
            run.claimed = False
            raise _StopRunError(StopReason.LOST_RACE) from exc
        run.saved_at, run.dirty = now, False
        run.summary.generation = run.generation
        run.summary.watermark = run.checkpoint.watermark

    def _heartbeat(self, run: _Run) -> None:
        """Renew the lease while listing without writing (pages with nothing new)."""
        if self._now() - run.saved_at >= self._options.effective_lease / 3:
            self._save(run, force=True)

    def _finish(self, run: _Run, reason: StopReason) -> None:
        now = self._now()
        run.record = replace(run.record, finished_at=now, outcome=reason.value)
        run.checkpoint = run.checkpoint.with_run(run.record, now)
        self._save(run, force=True)
        run.claimed = False

    def _release(self, run: _Run | None, outcome: str) -> None:
        """After a failure: keep what was written and mark the run (best effort), so a
        Scheduler retry of the same run is not taken for a duplicate and nobody waits on us."""
        if run is None or not run.claimed:
            return
        now = self._now()
        run.record = replace(run.record, finished_at=now, outcome=outcome)
        run.checkpoint = run.checkpoint.with_run(run.record, now)
        try:
            self._save(run, force=True)
        except GuardError:
            return
        except _StopRunError:
            # An interrupt can land inside a checkpoint write that did land, leaving the
            # generation we hold one behind: mark our run finished on what is stored (never
            # over it), or a rerun waits a whole lease for a run that is gone.
            with contextlib.suppress(GuardError):
                stored, generation = self._store.read()
                ours = stored.run(run.record.key) if stored is not None else None
                if stored is not None and ours is not None and ours.finished_at is None:
                    self._store.write(stored.with_run(run.record, now), generation)

    # -- the export ---------------------------------------------------------------------------

    def _check_deadline(self, run: _Run) -> None:
        if self._now() >= run.deadline:
            raise _StopRunError(StopReason.TIME_BUDGET)

    def _counted(
        self, run: _Run, pages: Iterator[Sequence[AuditLog]], *, skip: int = 0
    ) -> Iterator[Sequence[AuditLog]]:
        """`pages`, each counted and checked against the deadline (but the first `skip` pages,
        the probe already counted)."""
        for index, page in enumerate(pages):
            if index >= skip:
                self._page_seen(run)
            yield page

    def _page_seen(self, run: _Run) -> None:
        run.summary.pages += 1
        self._check_deadline(run)
        self._heartbeat(run)

    def _report(self, run: _Run, position: datetime | None = None) -> None:
        if position is not None and run.summary.span is not None:
            start, _, end = run.summary.span
            run.summary.span = (start, min(max(position, start), end), end)
        if self._progress is not None:
            self._progress(run.summary)

    def _set_order(self, run: _Run, order: Order) -> None:
        if run.checkpoint.order != order.value:
            run.checkpoint = replace(run.checkpoint, order=order.value)
            run.dirty = True
        run.summary.order = order.value

    def _export(self, run: _Run, until: date | None) -> None:
        order = run.checkpoint.order if self._options.detect_order else Order.UNORDERED.value
        try:
            if order == Order.DESC:
                resumed = run.checkpoint.descent is not None
                self._descend(run, until)
                if resumed and until is None:
                    self._descend(run, until)  # what arrived above the resumed pass
                return
            if order == Order.ASC:
                self._ascend(run, until)
                return
            if order is None:
                self._probe(run, until)
                return
        except _UntrustedOrderError as exc:
            _log.warning(
                "audit export: the listing order stopped being %s (%s); rewinding the checkpoint "
                "to this run's start and exporting the safe way (entries written since are "
                "written again and collapse by insertId)",
                run.checkpoint.order,
                exc,
            )
            self._rewind(run)
        self._set_order(run, Order.UNORDERED)
        self._sweep(run, until)

    def _rewind(self, run: _Run) -> None:
        start = run.start
        if start.descent is not None:  # what the unfinished pass had not yet proved
            owed = start.descent
            start = replace(
                start,
                watermark=owed.watermark,
                floor=owed.floor,
                recent=dict.fromkeys(owed.known, owed.floor),
            )
        run.checkpoint = replace(
            run.checkpoint,
            watermark=start.watermark,
            floor=start.floor,
            recent=start.recent,
            seeks=(),
            descent=None,
            sweep=None,
        )
        run.dirty = True
        self._save(run, force=True)

    def _listing(
        self,
        start: date,
        end: date | None,
        after: str | None = None,
        last_page: Callable[[Sequence[AuditLog]], bool] | None = None,
    ) -> Iterator[Sequence[AuditLog]]:
        """The pages of one query, fetched ahead in the background when the source can (never
        beyond a page `last_page` says the run stops at)."""
        kwargs: dict[str, Any] = {"start_date": start, "end_date": end}
        if after is not None:
            kwargs["starting_after"] = after
        prefetch = getattr(self._source, "prefetch", None)
        if callable(prefetch):
            prefetch(**kwargs, last_page=last_page)
        return iter(self._source.pages(**kwargs))

    @staticmethod
    def _below(floor: datetime) -> Callable[[Sequence[AuditLog]], bool]:
        """Whether a page of a descending listing reaches below `floor` (the descent's last)."""
        return lambda page: any(as_utc(r.timestamp) < floor for r in page)

    def _ordered_query(self, run: _Run, until: date | None) -> tuple[date, date | None]:
        margin = timedelta(days=self._options.day_margin)
        return run.checkpoint.floor.date() - margin, None if until is None else until + margin

    def _probe(self, run: _Run, until: date | None) -> None:
        """Read the order from the first pages of the open listing and carry on with it (an
        unordered one, or one too short to tell, as the safe path's pass).

        A first page can show too few steps to tell an order while the listing goes on: day
        windows (audit/windows.py) cut a page at the next window's first entry, so a listing
        that starts a few minutes before a UTC midnight begins with a page of those few
        entries. So the probe reads on, holding the pages read, until their timestamps together
        tell the order or the listing ends, or once it has two pages that hold at least as
        many entries as the largest of them and at least `PROBE_ENTRIES`: about two pages'
        worth at most. Only a listing still undecided then takes the safe path."""
        start, end = self._ordered_query(run, until)
        floor = run.checkpoint.floor
        # Read ahead no further than a descending listing would go (an ascending one starts
        # below the floor: its read-ahead is the first page's).
        pages = self._listing(start, end, last_page=self._below(floor))
        try:
            first = next(pages, None)
            if first is None:
                self._page_seen(run)  # nothing at all since the floor's day
                return
            self._page_seen(run)
            held: list[Sequence[AuditLog]] = [first]
            del first
            stamps = [as_utc(r.timestamp) for r in held[0]]
            largest = len(stamps)
            order = classify(stamps)
            ended = False
            while order is None and (len(held) == 1 or len(stamps) < max(largest, PROBE_ENTRIES)):
                page = next(pages, None)
                if page is None:
                    ended = True
                    break
                self._page_seen(run)
                held.append(page)
                largest = max(largest, len(page))
                stamps.extend(as_utc(r.timestamp) for r in page)
                del page
                order = classify(stamps)
            del stamps
            if order is None and ended:  # the pages read hold the whole window: no order needed
                buffer: Buffer = []
                for page in held:
                    buffer.extend(self._keep(run, page, until))
                del held
                buffer.sort(key=lambda item: item[0])
                self._write_window(run, buffer)
                self._report(run, run.end)
                return
            counted = len(held)
            # The same listing goes on as the pass, which lets each page read go once written
            # (the read-ahead of an unordered one pauses after a page reaching below the floor;
            # the pass then fetches each page itself).
            listing = _Prepended(held, pages)
            del held
            if order is Order.ASC:
                self._set_order(run, order)
                self._ascend(run, until, (start, end), listing, counted)
            elif order is Order.DESC:
                self._set_order(run, order)
                self._descend(run, until, listing, counted)
            else:  # unordered, or still too few steps to tell: the safe path
                self._set_order(run, Order.UNORDERED)
                self._sweep(run, until, listing, counted)
        finally:
            _close(pages)

    def _keep(
        self,
        run: _Run,
        page: Sequence[AuditLog],
        until: date | None,
        stamps: Sequence[datetime] | None = None,
    ) -> Buffer:
        """The entries of `page` the checkpoint does not hold (up to `until`); `stamps` are
        their UTC timestamps when the caller has them already."""
        kept: Buffer = []
        checkpoint = run.checkpoint
        if stamps is None:
            stamps = [as_utc(record.timestamp) for record in page]
        for record, timestamp in zip(page, stamps, strict=True):
            if until is not None and timestamp.date() > until:
                continue
            if checkpoint.is_new(timestamp, record.id):
                kept.append(((timestamp, record.id), record))
            else:
                run.summary.duplicates_skipped += 1
        return kept

    def _ascend(
        self,
        run: _Run,
        until: date | None,
        query: tuple[date, date | None] | None = None,
        pages: Iterator[Sequence[AuditLog]] | None = None,
        counted: int = 0,
    ) -> None:
        """Oldest first: write each page as it comes (sorted within the page). `pages`: the
        listing of `query` already begun (the probe's, its first `counted` pages counted)."""
        last: datetime | None = None
        if pages is None or query is None:
            start, end = self._ordered_query(run, until)
            seek = run.checkpoint.seek_for(run.checkpoint.floor)
            if seek is not None:
                start, last = seek.start_date, seek.last
            query = (start, end)
            pages = self._listing(start, end, seek.cursor if seek else None)
            counted = 0
        start, _ = query
        try:
            for page in self._counted(run, pages, skip=counted):
                if restarted(page):  # the seek's cursor was rejected: from the day's start
                    last = None
                newest = last
                stamps = [as_utc(record.timestamp) for record in page]
                for timestamp in stamps:
                    # Out of order within the overlap is a late arrival (the checkpoint handles
                    # it); below the floor nothing could tell it from an exported entry.
                    if last is not None and timestamp < last and timestamp < run.checkpoint.floor:
                        raise _UntrustedOrderError(
                            f"an entry dated {timestamp.isoformat()} after one dated "
                            f"{last.isoformat()}"
                        )
                    if newest is None or timestamp > newest:
                        newest = timestamp
                last = newest
                buffer = self._keep(run, page, until, stamps)
                buffer.sort(key=lambda item: item[0])
                self._write_window(run, buffer)
                cursor = next_cursor(page)
                if cursor is not None and last is not None:
                    run.checkpoint = run.checkpoint.with_seek(Seek(cursor, start, last))
                    run.dirty = True
                self._report(run, last)
                if until is not None and last is not None and last.date() > until:
                    return
        finally:
            _close(pages)

    def _descend(
        self,
        run: _Run,
        until: date | None,
        pages: Iterator[Sequence[AuditLog]] | None = None,
        counted: int = 0,
    ) -> None:
        """Newest first, down to the floor: write each page as it comes, and keep in the
        checkpoint what the pass still owes below it (see `Descent`). `pages`: the pass's
        listing already begun (the probe's, its first `counted` pages counted)."""
        margin = timedelta(days=self._options.day_margin)
        owed = run.checkpoint.descent
        resumed = owed is not None
        if owed is None:
            checkpoint = run.checkpoint
            owed = Descent(
                floor=checkpoint.floor,
                watermark=checkpoint.watermark,
                start_date=checkpoint.floor.date() - margin,
                known=frozenset(checkpoint.recent),
            )
            run.checkpoint = replace(checkpoint, descent=owed)
        # A source without cursors restarts a resumed pass from the top: skip what it wrote.
        band = (owed.lowest, owed.top) if resumed and owed.cursor is None else None
        if pages is None:
            end = None if until is None else until + margin
            pages = self._listing(owed.start_date, end, owed.cursor, self._below(owed.floor))
            counted = 0
        previous = owed.lowest if owed.cursor is not None else None
        try:
            for page in self._counted(run, pages, skip=counted):
                if restarted(page):  # the cursor was rejected: from the top, skip what it wrote
                    band, previous = (owed.lowest, owed.top), None
                owed, buffer, previous = self._descend_page(run, owed, page, previous, band, until)
                cursor = next_cursor(page)
                owed = replace(owed, cursor=cursor)
                lowest, top = owed.lowest, owed.top
                done = lowest is not None and lowest < owed.floor
                # Only once the page is written does the pass move past it: a failure before
                # leaves the previous cursor, and the next run lists this page again.
                self._write_window(run, buffer)
                run.checkpoint = replace(run.checkpoint, descent=None if done else owed)
                run.dirty = True
                self._save(run)
                if lowest is not None and top is not None and top > owed.floor:
                    covered = top - max(lowest, owed.floor)
                    span = run.summary.span
                    if span is not None:
                        start, _, end = span
                        fraction = covered / (top - owed.floor)
                        self._report(run, start + (end - start) * fraction)
                if done:
                    return
            run.checkpoint = replace(run.checkpoint, descent=None)
            run.dirty = True
            self._save(run)
        finally:
            _close(pages)

    def _descend_page(  # noqa: PLR0917 (one page's inputs)
        self,
        run: _Run,
        owed: Descent,
        page: Sequence[AuditLog],
        previous: datetime | None,
        band: tuple[datetime | None, datetime | None] | None,
        until: date | None,
    ) -> tuple[Descent, Buffer, datetime | None]:
        """What one page of a descent owes, checking that it keeps descending."""
        lowest, top = owed.lowest, owed.top
        skip_low, skip_high = band if band is not None else (None, None)
        buffer: Buffer = []
        for record in page:
            timestamp = as_utc(record.timestamp)
            if previous is not None and timestamp > previous:
                raise _UntrustedOrderError(
                    f"an entry dated {timestamp.isoformat()} after one dated {previous.isoformat()}"
                )
            previous = timestamp
            lowest = timestamp if lowest is None else min(lowest, timestamp)
            top = timestamp if top is None else max(top, timestamp)
            if until is not None and timestamp.date() > until:
                continue
            skipped = skip_low is not None and skip_high is not None
            if (skipped and skip_low <= timestamp <= skip_high) or not owed.owes(  # type: ignore[operator]
                timestamp, record.id
            ):
                run.summary.duplicates_skipped += 1
                continue
            buffer.append(((timestamp, record.id), record))
        buffer.sort(key=lambda item: item[0])
        return replace(owed, lowest=lowest, top=top), buffer, previous

    # -- the safe path ------------------------------------------------------------------------

    def _sweep(
        self,
        run: _Run,
        until: date | None,
        pages: Iterator[Sequence[AuditLog]] | None = None,
        counted: int = 1,
    ) -> None:
        """Unordered: one open-ended pass from the floor's day (minus the margin), each page's
        new entries written as they come (sorted within the page), and in the checkpoint what
        the pass still owes (`Sweep`). `pages`: the pass's listing already begun (the probe's,
        its first `counted` pages counted)."""
        margin = timedelta(days=self._options.day_margin)
        owed = run.checkpoint.sweep
        if owed is None:
            checkpoint = run.checkpoint
            owed = Sweep(
                floor=checkpoint.floor,
                watermark=checkpoint.watermark,
                start_date=checkpoint.floor.date() - margin,
                # An entry created from now on may land behind the cursor: the watermark must
                # not pass it, so the next pass lists it (our clock, less the skew allowed).
                cap=self._now() - self._options.clock_skew,
                known=frozenset(checkpoint.recent),
            )
            run.checkpoint = replace(checkpoint, sweep=owed)
            run.dirty = True
        run.cap = owed.cap
        run.summary.days += 1
        skip = counted if pages is not None else 0
        if pages is None:
            end = None if until is None else until + margin
            pages = self._listing(owed.start_date, end, owed.cursor)
        try:
            for page in self._counted(run, pages, skip=skip):
                buffer = self._owed(run, owed, page, until)
                cursor = next_cursor(page)
                # A page that says where the listing goes on and says "nowhere" ends it; a
                # source without cursors lists the pass again if it is resumed.
                done = cursor is None and hasattr(page, "next_cursor")
                owed = replace(owed, cursor=cursor)
                following = None if done else owed
                # Only once the page is written does the pass move past it (in the checkpoint
                # write of its last batch): a failure before leaves the previous cursor, and
                # the next run lists this page again.
                self._write_window(run, buffer, _owing(following))
                self._save(run)
                self._report(run)
                if done:
                    break
            run.checkpoint = replace(run.checkpoint, sweep=None)
            run.dirty = True
            self._save(run)
            self._report(run, run.end)
        finally:
            _close(pages)

    def _owed(self, run: _Run, owed: Sweep, page: Sequence[AuditLog], until: date | None) -> Buffer:
        """The entries of `page` the pass owes (up to `until`), sorted."""
        recent = run.checkpoint.recent  # written by this pass (a listing seen twice)
        buffer: Buffer = []
        for record in page:
            timestamp = as_utc(record.timestamp)
            if until is not None and timestamp.date() > until:
                continue  # the margin's
            if not owed.owes(timestamp, record.id) or record.id in recent:
                run.summary.duplicates_skipped += 1
                continue
            buffer.append(((timestamp, record.id), record))
        buffer.sort(key=lambda item: item[0])
        return buffer

    # -- writing ------------------------------------------------------------------------------

    def _write_window(
        self, run: _Run, buffer: Buffer, then: Callable[[Checkpoint], Checkpoint] | None = None
    ) -> None:
        """Write sorted entries in batches, advancing the checkpoint after each batch; `then`
        changes the checkpoint with the last batch (or at once if nothing is written)."""
        summary = run.summary
        options = self._options
        now = self._now()
        horizon = now + options.clock_skew
        if run.cap is not None:  # an unordered pass: the watermark stays at or below its cap
            horizon = min(horizon, run.cap)
        if options.retention is not None and buffer:
            # Cloud Logging accepts entries older than the bucket's retention and stores
            # nothing: count them (the summary and the log say so) and move past them.
            oldest_kept = now - options.retention
            refused = 0
            while refused < len(buffer) and buffer[refused][0][0] < oldest_kept:
                refused += 1
            if refused:
                summary.beyond_retention += refused
                first = buffer[0][0][0]
                if summary.oldest_beyond_retention is None or first < (
                    summary.oldest_beyond_retention
                ):
                    summary.oldest_beyond_retention = first
                run.checkpoint = run.checkpoint.advanced(
                    (key for key, _ in buffer[:refused]),
                    overlap=options.overlap,
                    recent_cap=options.recent_cap,
                    now=now,
                    horizon=horizon,
                    ceiling=run.cap,
                )
                run.dirty = True
                buffer = buffer[refused:]
        limit = now + LOGGING_FUTURE_LIMIT

        def export(key: Key, record: AuditLog) -> Any:
            if key[0] > limit:
                summary.future_entries += 1
                return to_export_entry(record, timestamp=now)
            return to_export_entry(record, timestamp=key[0])

        entries = (export(key, record) for key, record in buffer)
        keys = iter(buffer)
        pending = batches(
            entries, max_entries=options.max_batch_entries, max_bytes=options.max_batch_bytes
        )
        batch = next(pending, None)
        if batch is None and then is not None:
            run.checkpoint = then(run.checkpoint)
            run.dirty = True
        while batch is not None:
            following = next(pending, None)  # to know which batch is the last
            self._check_deadline(run)
            self._sink.write(batch)
            written = [next(keys)[0] for _ in batch]
            summary.exported += len(batch)
            summary.batches += 1
            summary.late_entries += sum(1 for t, _ in written if t < run.start_watermark)
            run.checkpoint = run.checkpoint.advanced(
                written,
                overlap=options.overlap,
                recent_cap=options.recent_cap,
                now=self._now(),
                horizon=horizon,
                ceiling=run.cap,
            )
            if following is None and then is not None:
                run.checkpoint = then(run.checkpoint)  # in the same write as the last batch
            run.dirty = True
            self._save(run)
            self._report(run)
            batch = following


class _Prepended:
    """Pages already read (the list is taken over), then the rest of their listing. Unlike
    `itertools.chain(read, ...)` it lets each page go once handed on, so a pass holds one page,
    not also the ones the probe read."""

    def __init__(self, read: list[Sequence[AuditLog]], rest: Iterator[Sequence[AuditLog]]) -> None:
        self._read = read
        self._read.reverse()  # popped from the end, oldest read first
        self._rest = rest

    def __iter__(self) -> Iterator[Sequence[AuditLog]]:
        return self

    def __next__(self) -> Sequence[AuditLog]:
        return self._read.pop() if self._read else next(self._rest)


def _owing(sweep: Sweep | None) -> Callable[[Checkpoint], Checkpoint]:
    """A checkpoint change: the unordered pass now owes `sweep` (None: it is done)."""
    return lambda checkpoint: replace(checkpoint, sweep=sweep)


def _close(pages: Iterator[Sequence[AuditLog]]) -> None:
    close = getattr(pages, "close", None)
    if callable(close):
        close()
