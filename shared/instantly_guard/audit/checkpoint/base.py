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
- `runs`: recent Cloud Scheduler runs (job + schedule time) with start and finish, for
  at-least-once deduplication and as a lease against overlapping runs.

Stores (`CheckpointStore`) return the state with a `generation` and write only if the stored
generation is still the one given (0 = "must not exist yet"), else raise `ConflictError`: two
runs can never both advance the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from instantly_guard.errors import BackendError

FORMAT_VERSION: Final = 1
RUN_HISTORY: Final = timedelta(hours=24)
MAX_RUNS: Final = 300
DEFAULT_RECENT_CAP: Final = 5000


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One export run: `key` is `job@schedule-time` for Scheduler runs, a random id otherwise."""

    key: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        finished = data.get("finished_at")
        return cls(
            key=str(data["key"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            outcome=data.get("outcome"),
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

    @classmethod
    def starting_at(cls, at: datetime) -> Checkpoint:
        """Nothing exported yet: everything at or after `at` is new."""
        return cls(watermark=at, floor=at)

    def is_new(self, timestamp: datetime, entry_id: str) -> bool:
        if timestamp > self.watermark:
            return True
        return timestamp >= self.floor and entry_id not in self.recent

    def advanced(
        self,
        exported: Iterable[tuple[datetime, str]],
        *,
        overlap: timedelta,
        recent_cap: int = DEFAULT_RECENT_CAP,
        now: datetime | None = None,
    ) -> Checkpoint:
        """The checkpoint after `exported` (timestamp, id) pairs were written."""
        recent = dict(self.recent)
        count = 0
        watermark = self.watermark
        for timestamp, entry_id in exported:
            recent[entry_id] = timestamp
            watermark = max(watermark, timestamp)
            count += 1
        if count == 0:
            return self
        floor = max(self.floor, watermark - overlap)
        recent = {k: t for k, t in recent.items() if t >= floor}
        if len(recent) > recent_cap:
            # Keep every id from the cap-th newest timestamp on (ties included), so `recent`
            # stays complete above the raised floor.
            floor = sorted(recent.values(), reverse=True)[recent_cap - 1]
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
        """An unfinished run started less than `lease` ago (it may still be working)."""
        for record in self.runs:
            if record.finished_at is None and now - record.started_at < lease:
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
