"""The export checkpoint and the port of the stores that keep it with compare-and-swap.

A `Checkpoint` says exactly which entries are already exported, whatever order Instantly lists
them in:

- `watermark`: the newest exported timestamp; every entry after it is new;
- `recent`: the id (and timestamp) of every exported entry with a timestamp >= `floor`, where
  `floor` trails the watermark by the configured overlap (and rises earlier if `recent` would
  exceed its cap). An entry at or below the watermark but >= `floor` is new unless its id is in
  `recent`: that covers ties at the watermark's millisecond and entries that became visible late
  (a listing is not a snapshot: an entry inserted behind the cursor is missed by one run while a
  newer one is seen). Entries below `floor` count as exported.
- `runs`: recent Cloud Scheduler runs (job + schedule time) with start, finish and heartbeat,
  for at-least-once deduplication and as a lease against overlapping runs.

What the exporter learned about the listing, so the next run can use it (all optional, see
docs/audit-export.md): `order` (`asc`, `desc` or `unordered`, detected from the pages), `seeks`
(cursors of an ascending listing, to resume near the floor instead of paging from its day's
start), `descent` (a newest-first pass that a previous run did not finish: what it still
owes, and where to resume) and `sweep` (the same for a pass over an unordered listing).

Stores (`CheckpointStore`) return the state with a `generation` and write only if the stored
generation is still the one given (0 = "must not exist yet"), else raise `ConflictError`: two
runs can never both advance the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Final, Protocol

from instantly_guard.errors import BackendError

FORMAT_VERSION: Final = 1
RUN_HISTORY: Final = timedelta(hours=24)
MAX_RUNS: Final = 300
DEFAULT_RECENT_CAP: Final = 5000


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One export run: `key` is `job@schedule-time` for Scheduler runs, a random id otherwise.

    `heartbeat_at` is renewed by every checkpoint write of a working run: its lease runs from
    there, so a run killed mid-way blocks the next ones for one lease, not for its whole budget.
    """

    key: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None
    heartbeat_at: datetime | None = None

    @property
    def alive_at(self) -> datetime:
        """When the run last showed it was working."""
        return self.heartbeat_at or self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        finished = data.get("finished_at")
        heartbeat = data.get("heartbeat_at")
        return cls(
            key=str(data["key"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            outcome=data.get("outcome"),
            heartbeat_at=datetime.fromisoformat(heartbeat) if heartbeat else None,
        )


MAX_SEEKS: Final = 8


@dataclass(frozen=True, slots=True)
class Seek:
    """A cursor an ascending listing returned: listing `start_date` again with
    `starting_after=cursor` continues after an entry dated `last` (the page's newest)."""

    cursor: str
    start_date: date
    last: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "start_date": self.start_date.isoformat(),
            "last": self.last.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Seek:
        return cls(
            cursor=str(data["cursor"]),
            start_date=date.fromisoformat(data["start_date"]),
            last=datetime.fromisoformat(data["last"]),
        )


@dataclass(frozen=True, slots=True)
class Descent:
    """A newest-first pass over a descending listing, written page by page as it is listed.

    It owes every entry dated >= `floor` that the checkpoint at its start did not hold: those
    not in `known` (that checkpoint's `recent` ids; `watermark` was its newest). The
    checkpoint's own watermark moves to the newest entry at once, so until the descent is done
    its state is what says what is still missing below. `cursor` resumes the listing after the
    last page written (None: not yet started, or a source without cursors); `lowest` is the
    oldest timestamp listed so far, `top` the newest.
    """

    floor: datetime
    watermark: datetime
    start_date: date
    known: frozenset[str] = frozenset()
    cursor: str | None = None
    lowest: datetime | None = None
    top: datetime | None = None

    def owes(self, timestamp: datetime, entry_id: str) -> bool:
        # As `Checkpoint.is_new` at the pass's start (`known` also holds entries dated ahead).
        return timestamp >= self.floor and entry_id not in self.known

    def to_json(self) -> dict[str, Any]:
        return {
            "floor": self.floor.isoformat(),
            "watermark": self.watermark.isoformat(),
            "start_date": self.start_date.isoformat(),
            "known": sorted(self.known),
            "cursor": self.cursor,
            "lowest": self.lowest.isoformat() if self.lowest else None,
            "top": self.top.isoformat() if self.top else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descent:
        lowest, top = data.get("lowest"), data.get("top")
        return cls(
            floor=datetime.fromisoformat(data["floor"]),
            watermark=datetime.fromisoformat(data["watermark"]),
            start_date=date.fromisoformat(data["start_date"]),
            known=frozenset(str(k) for k in data.get("known", ())),
            cursor=data.get("cursor"),
            lowest=datetime.fromisoformat(lowest) if lowest else None,
            top=datetime.fromisoformat(top) if top else None,
        )


@dataclass(frozen=True, slots=True)
class Sweep:
    """One pass over an unordered listing, written page by page as it is listed.

    It owes every entry dated >= `floor` that the checkpoint at its start did not hold (ids not
    in `known`; `watermark` was that checkpoint's newest), listed open-ended from `start_date`.
    `cursor` resumes the listing after the last page written (None: not started yet, or a source
    without cursors: the pass lists again from its start). An entry created while the pass pages
    can land behind the cursor and stay unseen, dated before entries the pass does see, so the
    checkpoint's watermark never passes `cap` (the pass's start on our clock, minus the clock
    skew allowed) while the pass or its results stand: the next pass lists from there.
    """

    floor: datetime
    watermark: datetime
    start_date: date
    cap: datetime
    known: frozenset[str] = frozenset()
    cursor: str | None = None

    def owes(self, timestamp: datetime, entry_id: str) -> bool:
        # As `Checkpoint.is_new` at the pass's start.
        return timestamp >= self.floor and entry_id not in self.known

    def to_json(self) -> dict[str, Any]:
        return {
            "floor": self.floor.isoformat(),
            "watermark": self.watermark.isoformat(),
            "start_date": self.start_date.isoformat(),
            "cap": self.cap.isoformat(),
            "known": sorted(self.known),
            "cursor": self.cursor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sweep:
        return cls(
            floor=datetime.fromisoformat(data["floor"]),
            watermark=datetime.fromisoformat(data["watermark"]),
            start_date=date.fromisoformat(data["start_date"]),
            cap=datetime.fromisoformat(data["cap"]),
            known=frozenset(str(k) for k in data.get("known", ())),
            cursor=data.get("cursor"),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What has been exported (see the module doc). Immutable: every change returns a copy."""

    watermark: datetime
    floor: datetime
    recent: Mapping[str, datetime] = field(default_factory=dict)
    runs: tuple[RunRecord, ...] = ()
    exported_total: int = 0
    updated_at: datetime | None = None
    order: str | None = None
    seeks: tuple[Seek, ...] = ()
    descent: Descent | None = None
    sweep: Sweep | None = None
    # State another user of the store keeps in the same compare-and-swap object (the
    # reconciler's read positions, `reconcile.position`); the export neither reads nor changes it.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def starting_at(cls, at: datetime) -> Checkpoint:
        """Nothing exported yet: everything at or after `at` is new."""
        return cls(watermark=at, floor=at)

    def is_new(self, timestamp: datetime, entry_id: str) -> bool:
        # `recent` also holds entries dated ahead of the clock (above the watermark).
        return timestamp >= self.floor and entry_id not in self.recent

    def seek_for(self, floor: datetime) -> Seek | None:
        """The newest remembered cursor that is safely before `floor` (None: list from the
        floor's day)."""
        usable = [s for s in self.seeks if s.last < floor]
        return max(usable, key=lambda s: s.last) if usable else None

    def with_seek(self, seek: Seek) -> Checkpoint:
        """Remember a cursor; keep the newest one before the floor and the ones after it."""
        seeks = sorted((*self.seeks, seek), key=lambda s: s.last)
        below = [s for s in seeks if s.last < self.floor][-1:]
        above = [s for s in seeks if s.last >= self.floor]
        return replace(self, seeks=tuple((below + above)[-MAX_SEEKS:]))

    def advanced(
        self,
        exported: Iterable[tuple[datetime, str]],
        *,
        overlap: timedelta,
        recent_cap: int = DEFAULT_RECENT_CAP,
        now: datetime | None = None,
        horizon: datetime | None = None,
        ceiling: datetime | None = None,
    ) -> Checkpoint:
        """The checkpoint after `exported` (timestamp, id) pairs were written.

        An entry dated after `horizon` (the clock plus the skew allowed) does not move the
        watermark: a clock running ahead on Instantly's side would otherwise make every real
        entry until then look already exported. It is kept in `recent` until the floor passes
        it, so it is not exported again meanwhile.

        `ceiling` (an unordered pass's cap, see `Sweep`): entries after it may not all have been
        seen, so the floor never rises past it, not even when `recent` passes `recent_cap`; then
        the ids above it beyond the cap are forgotten instead (the next pass writes those again:
        duplicates, collapsed by insertId, never a gap)."""
        recent = dict(self.recent)
        count = 0
        watermark = self.watermark
        for timestamp, entry_id in exported:
            recent[entry_id] = timestamp
            if horizon is None or timestamp <= horizon:
                watermark = max(watermark, timestamp)
            count += 1
        if count == 0:
            return self
        floor = max(self.floor, watermark - overlap)
        recent = {k: t for k, t in recent.items() if t >= floor}
        if len(recent) > recent_cap:
            # Keep every id from the cap-th newest timestamp on (ties included), so `recent`
            # stays complete above the raised floor.
            raised = sorted(recent.values(), reverse=True)[recent_cap - 1]
            if ceiling is not None and raised > ceiling:
                floor = max(floor, ceiling)
                newest = sorted(recent.items(), key=lambda item: item[1], reverse=True)
                recent = {k: t for k, t in newest[:recent_cap] if t >= floor}
            else:
                floor = raised
                recent = {k: t for k, t in recent.items() if t >= floor}
        return replace(
            self,
            watermark=watermark,
            floor=floor,
            recent=recent,
            exported_total=self.exported_total + count,
            updated_at=now or self.updated_at,
        )

    # -- runs ---------------------------------------------------------------------------------

    def run(self, key: str) -> RunRecord | None:
        for record in self.runs:
            if record.key == key:
                return record
        return None

    def active_run(self, now: datetime, lease: timedelta) -> RunRecord | None:
        """An unfinished run that showed it was working less than `lease` ago."""
        for record in self.runs:
            if record.finished_at is None and now - record.alive_at < lease:
                return record
        return None

    def with_run(self, record: RunRecord, now: datetime) -> Checkpoint:
        """Record (or replace) a run, forgetting runs older than a day beyond the newest 300."""
        runs = [r for r in self.runs if r.key != record.key and now - r.started_at < RUN_HISTORY]
        runs.append(record)
        return replace(self, runs=tuple(runs[-MAX_RUNS:]), updated_at=now)

    # -- encoding -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "watermark": self.watermark.isoformat(),
            "floor": self.floor.isoformat(),
            "recent": {k: t.isoformat() for k, t in self.recent.items()},
            "runs": [r.to_json() for r in self.runs],
            "exported_total": self.exported_total,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "order": self.order,
            "seeks": [s.to_json() for s in self.seeks],
            "descent": self.descent.to_json() if self.descent else None,
            "sweep": self.sweep.to_json() if self.sweep else None,
            "extra": dict(self.extra),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        if data.get("version") != FORMAT_VERSION:
            raise BackendError(
                f"checkpoint format {data.get('version')!r} is not {FORMAT_VERSION}",
                retryable=False,
            )
        updated = data.get("updated_at")
        return cls(
            watermark=datetime.fromisoformat(data["watermark"]),
            floor=datetime.fromisoformat(data["floor"]),
            recent={str(k): datetime.fromisoformat(t) for k, t in data["recent"].items()},
            runs=tuple(RunRecord.from_json(r) for r in data.get("runs", ())),
            exported_total=int(data.get("exported_total", 0)),
            updated_at=datetime.fromisoformat(updated) if updated else None,
            order=data.get("order"),
            seeks=tuple(Seek.from_json(s) for s in data.get("seeks") or ()),
            descent=Descent.from_json(data["descent"]) if data.get("descent") else None,
            sweep=Sweep.from_json(data["sweep"]) if data.get("sweep") else None,
            extra=dict(data.get("extra") or {}),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Checkpoint:
        try:
            return cls.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackendError(f"checkpoint is unreadable: {exc}", retryable=False) from exc


class CheckpointStore(Protocol):
    """Where the checkpoint lives. Generations are opaque increasing integers; 0 = absent."""

    def read(self) -> tuple[Checkpoint | None, int]:
        """The stored checkpoint (None when there is none yet) and its generation."""
        ...

    def write(self, state: Checkpoint, if_generation: int) -> int:
        """Store `state` if the stored generation is still `if_generation`; return the new one.

        Raises ConflictError when it is not (another run wrote in between), BackendError when the
        store fails.
        """
        ...

    def describe(self) -> str:
        """Where the checkpoint is, for logs (`gs://bucket/object`, a path)."""
        ...
