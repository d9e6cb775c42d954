"""One export run: Instantly's audit log -> a sink, oldest first, exactly the new entries.

The listing order of `GET /audit-logs` is undocumented and a listing is not a snapshot, so the
run never relies on order. It walks UTC days from the checkpoint's `floor` to today, one window
per day. The API's day filters are in an undocumented timezone with an undocumented end, so each
UTC day `d` is queried with a margin (`start_date = d - margin`, `end_date = d + margin`; the last
window is open-ended, `start_date = today - margin`, so entries written after midnight during the
run are included) and only the entries whose UTC day is `d` (`>= today` for the last window) are
kept: every UTC day is covered by its own query whatever the API's offset, and no entry is kept
by two windows. For each window it pages to the end, keeps what the checkpoint does not already
hold, sorts by (timestamp, id), writes batches and advances the checkpoint after each written
batch (compare-and-swap).

Memory is bounded by one day's new entries, and by `max_buffered` even for a day larger than
that: once the window holds `2 * max_buffered` entries it keeps only the oldest `max_buffered`
and drops anything newer than the cut; after writing those, the same day is fetched again.
Nothing grows with the size of the backlog. See docs/audit-export.md for the reasoning.

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
from typing import Any, Protocol

from instantly_guard.audit.batching import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, batches
from instantly_guard.audit.checkpoint.base import (
    DEFAULT_RECENT_CAP,
    Checkpoint,
    CheckpointStore,
    RunRecord,
)
from instantly_guard.audit.entries import as_utc, to_export_entry
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.errors import BackendError, ConflictError, GuardError, InstantlyError
from instantly_guard.instantly.models import AuditLog

_log = logging.getLogger("instantly_guard.audit")


class StopReason(StrEnum):
    COMPLETE = "complete"  # every entry listed up to now is exported
    TIME_BUDGET = "time_budget"  # stopped before the deadline; the next run resumes
    LOST_RACE = "lost_race"  # another run wrote the checkpoint: it owns the export now
    DUPLICATE = "duplicate_delivery"  # this Scheduler run (job + schedule time) already ran
    BUSY = "run_in_progress"  # another run holds a fresh claim on the checkpoint
    FAILED = "failed"  # an Instantly or backend error; `Summary.error` says which


class PageSource(Protocol):
    """Pages of audit entries for a window of API days (`end_date=None`: open-ended)."""

    def pages(self, *, start_date: date, end_date: date | None) -> Iterator[Sequence[AuditLog]]: ...


class ClientPageSource:
    """`PageSource` over `InstantlyClient.iter_audit_log_pages` (1,000 entries per page)."""

    def __init__(self, client: Any, *, page_size: int = 1000) -> None:
        self._client = client
        self._page_size = page_size

    def pages(self, *, start_date: date, end_date: date | None) -> Iterator[Sequence[AuditLog]]:
        pages: Iterator[Sequence[AuditLog]] = self._client.iter_audit_log_pages(
            start_date=start_date, end_date=end_date, limit=self._page_size
        )
        return pages


@dataclass(frozen=True, slots=True)
class ExportOptions:
    lookback: timedelta = timedelta(days=7)
    time_budget: timedelta = timedelta(seconds=480)
    overlap: timedelta = timedelta(minutes=5)
    max_buffered: int = 20_000
    recent_cap: int = DEFAULT_RECENT_CAP
    checkpoint_interval: timedelta = timedelta(seconds=1)
    lease: timedelta | None = None  # default: time_budget + 2 minutes
    max_batch_entries: int = MAX_BATCH_ENTRIES
    max_batch_bytes: int = MAX_BATCH_BYTES
    # Days added on each side of a UTC day's query (the API's date filters are in an unknown
    # timezone): 1 covers any UTC offset if `end_date` is inclusive, 2 an exclusive one too.
    day_margin: int = 1

    @property
    def effective_lease(self) -> timedelta:
        return self.lease if self.lease is not None else self.time_budget + timedelta(minutes=2)


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
    days: int = 0
    watermark: datetime | None = None
    generation: int = 0
    checkpoint_location: str = ""
    duration_ms: int = 0
    error: GuardError | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "stopped_reason": self.stopped_reason.value,
            "exported": self.exported,
            "duplicates_skipped": self.duplicates_skipped,
            "late_entries": self.late_entries,
            "pages": self.pages,
            "batches": self.batches,
            "days": self.days,
            "checkpoint": {
                "watermark": self.watermark.isoformat() if self.watermark else None,
                "generation": self.generation,
                "location": self.checkpoint_location,
            },
            "duration_ms": self.duration_ms,
        }


_RETRYABLE = frozenset({"failed", "abandoned"})
"""Outcomes after which a redelivery of the same Scheduler run must export (it is a retry)."""


class _StopRunError(Exception):
    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Run:
    summary: Summary
    record: RunRecord
    checkpoint: Checkpoint
    generation: int
    deadline: datetime
    start_watermark: datetime
    saved_at: datetime
    dirty: bool = False
    claimed: bool = False


class Exporter:
    """Runs exports from `source` to `sink`, keeping the checkpoint in `store`."""

    def __init__(
        self,
        source: PageSource,
        sink: LogSink,
        store: CheckpointStore,
        options: ExportOptions | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._source = source
        self._sink = sink
        self._store = store
        self._options = options or ExportOptions()
        self._clock = clock
        if self._options.max_buffered < 1:
            raise ValueError("max_buffered must be >= 1")
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
            run = self._claim(summary, key, started, deduplicate=run_key is not None)
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
            self._release(run)
        except BaseException:
            self._release(run)
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

    def _claim(self, summary: Summary, key: str, now: datetime, *, deduplicate: bool) -> _Run:
        state, generation = self._store.read()
        checkpoint = state or Checkpoint.starting_at(now - self._options.lookback)
        summary.watermark, summary.generation = checkpoint.watermark, generation
        lease = self._options.effective_lease
        if deduplicate and (previous := checkpoint.run(key)) is not None:
            finished_ok = previous.finished_at is not None and previous.outcome not in _RETRYABLE
            in_progress = previous.finished_at is None and now - previous.started_at < lease
            if finished_ok or in_progress:
                raise _StopRunError(StopReason.DUPLICATE)
        active = checkpoint.active_run(now, lease)
        if active is not None and active.key != key:
            raise _StopRunError(StopReason.BUSY)
        for stale in checkpoint.runs:
            if stale.finished_at is None and stale.key != key:
                # Its lease ran out (crashed, killed at its timeout): it no longer blocks anyone.
                checkpoint = checkpoint.with_run(
                    replace(stale, finished_at=now, outcome="abandoned"), now
                )
        record = RunRecord(key=key, started_at=now)
        checkpoint = checkpoint.with_run(record, now)
        try:
            generation = self._store.write(checkpoint, generation)
        except ConflictError as exc:
            raise _StopRunError(StopReason.LOST_RACE) from exc
        summary.generation = generation
        return _Run(
            summary=summary,
            record=record,
            checkpoint=checkpoint,
            generation=generation,
            deadline=now + self._options.time_budget,
            start_watermark=checkpoint.watermark,
            saved_at=now,
            claimed=True,
        )

    def _save(self, run: _Run, *, force: bool = False) -> None:
        now = self._now()
        if not (force or (run.dirty and now - run.saved_at >= self._options.checkpoint_interval)):
            return
        try:
            run.generation = self._store.write(run.checkpoint, run.generation)
        except ConflictError as exc:
            run.claimed = False
            raise _StopRunError(StopReason.LOST_RACE) from exc
        run.saved_at, run.dirty = now, False
        run.summary.generation = run.generation
        run.summary.watermark = run.checkpoint.watermark

    def _finish(self, run: _Run, reason: StopReason) -> None:
        now = self._now()
        record = replace(run.record, finished_at=now, outcome=reason.value)
        run.checkpoint = run.checkpoint.with_run(record, now)
        self._save(run, force=True)
        run.claimed = False

    def _release(self, run: _Run | None) -> None:
        """After a failure: keep what was written and mark the run failed (best effort), so a
        Scheduler retry of the same run is not taken for a duplicate and nobody waits on us."""
        if run is None or not run.claimed:
            return
        record = replace(run.record, finished_at=self._now(), outcome="failed")
        run.checkpoint = run.checkpoint.with_run(record, self._now())
        with contextlib.suppress(GuardError, _StopRunError):
            self._save(run, force=True)

    # -- the export ---------------------------------------------------------------------------

    def _check_deadline(self, run: _Run) -> None:
        if self._now() >= run.deadline:
            raise _StopRunError(StopReason.TIME_BUDGET)

    def _export(self, run: _Run, until: date | None) -> None:
        today = self._now().date()
        day = min(run.checkpoint.floor.date(), today)
        prefetch = getattr(self._source, "prefetch", None)
        while until is None or day <= until:
            open_ended = until is None and day >= today
            run.summary.days += 1
            buffer, complete = self._list_window(run, day, open_ended=open_ended)
            following = day + timedelta(days=1)
            more = complete and not open_ended and (until is None or following <= until)
            if more and callable(prefetch):
                # Let the source fetch the next window while this one is being written.
                last = until is None and following >= today
                start, end = self._query(following, open_ended=last)
                prefetch(start_date=start, end_date=end)
            self._write_window(run, buffer)
            if complete:
                if open_ended:
                    return
                day = following

    def _query(self, day: date, *, open_ended: bool) -> tuple[date, date | None]:
        """The API window (`start_date`, `end_date`) that holds every entry of UTC `day` (and
        after, when open-ended) as long as the API's day boundaries are within the margin."""
        margin = timedelta(days=self._options.day_margin)
        return day - margin, None if open_ended else day + margin

    def _list_window(
        self, run: _Run, day: date, *, open_ended: bool
    ) -> tuple[list[tuple[tuple[datetime, str], AuditLog]], bool]:
        """The new entries of `day` (and after, when open-ended), sorted oldest first, and
        whether that is all of them: False when the window held more than `max_buffered` new
        entries and must be fetched again for the rest, after these are written."""
        limit = self._options.max_buffered
        checkpoint = run.checkpoint
        summary = run.summary
        buffer: list[tuple[tuple[datetime, str], AuditLog]] = []
        cutoff: tuple[datetime, str] | None = None

        def trim() -> None:
            nonlocal cutoff
            buffer.sort(key=lambda item: item[0])
            del buffer[limit:]
            cutoff = buffer[-1][0]

        start, end = self._query(day, open_ended=open_ended)
        pages = self._source.pages(start_date=start, end_date=end)
        for page in pages:
            summary.pages += 1
            self._check_deadline(run)
            for record in page:
                timestamp = as_utc(record.timestamp)
                when = timestamp.date()
                if when < day or (when > day and not open_ended):
                    continue  # the margin's: another UTC day's window keeps it
                if not checkpoint.is_new(timestamp, record.id):
                    summary.duplicates_skipped += 1
                    continue
                key = (timestamp, record.id)
                if cutoff is not None and key > cutoff:
                    continue  # beyond this pass's cut: the next pass over the day gets it
                buffer.append((key, record))
                if len(buffer) >= 2 * limit:
                    trim()
        complete = cutoff is None and len(buffer) <= limit
        if complete:
            buffer.sort(key=lambda item: item[0])
        else:
            trim()
        return buffer, complete

    def _write_window(self, run: _Run, buffer: list[tuple[tuple[datetime, str], AuditLog]]) -> None:
        """Write sorted entries in batches, advancing the checkpoint after each batch."""
        summary = run.summary
        entries = (to_export_entry(record, timestamp=key[0]) for key, record in buffer)
        for batch in batches(
            entries,
            max_entries=self._options.max_batch_entries,
            max_bytes=self._options.max_batch_bytes,
        ):
            self._check_deadline(run)
            self._sink.write(batch)
            summary.exported += len(batch)
            summary.batches += 1
            summary.late_entries += sum(1 for e in batch if e.timestamp < run.start_watermark)
            run.checkpoint = run.checkpoint.advanced(
                ((e.timestamp, e.insert_id) for e in batch),
                overlap=self._options.overlap,
                recent_cap=self._options.recent_cap,
                now=self._now(),
            )
            run.dirty = True
            self._save(run)
