"""Where the reconciler is in each webhook URL's delivery log, kept in the checkpoint.

A run reads only what is new (docs/reconcile.md, "Reading only what is new"): the delivery log's
cursor is the id of the last item of a page (the OpenAPI document), so the checkpoint keeps, per
receiver URL, a `Stream`:

- `order`: the listing's order once seen (`asc`: oldest first, `desc`: newest first);
- `head`: the newest record passed, as a cursor and a position. Every record at or before it
  is settled, or is in `pending`;
- `descent`: a newest-first pass not finished yet (time budget, crash): it resumes after
  `cursor` and ends at `stop` (the head when it started); its `top` becomes the head.

`pending` holds the failed records Instantly said it would retry, by id: they are looked at
again (one `GET /webhook-events/{id}` each) once the retry grace is over, or settled as soon as
a newer attempt of the same retry group is read. They are the only records kept across runs.

All of it is JSON in `Checkpoint.extra["reconcile"]`, written with the run's compare-and-swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

KEY: Final = "reconcile"
Position = tuple[datetime, str]


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text))


@dataclass(frozen=True, slots=True)
class Mark:
    """A record's place: its id (also the cursor after it) and its creation time."""

    id: str
    at: datetime

    @property
    def position(self) -> Position:
        return self.at, self.id

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Mark | None:
        return cls(str(data["id"]), _time(data["at"])) if data else None


@dataclass(frozen=True, slots=True)
class Descent:
    """A newest-first pass: `top` is where it began, `cursor` the last record it passed,
    `stop` the head it runs down to (None: the first run's floor, `floor`)."""

    top: Mark
    cursor: Mark
    stop: Mark | None
    floor: datetime

    def reached(self, position: Position) -> bool:
        """Whether a record at `position` is at or below where the pass ends (by id, the
        listing's own order, when it runs down to a head)."""
        if self.stop is not None:
            return position[1] <= self.stop.id
        return position[0] < self.floor

    def to_json(self) -> dict[str, Any]:
        return {
            "top": self.top.to_json(),
            "cursor": self.cursor.to_json(),
            "stop": self.stop.to_json() if self.stop else None,
            "floor": self.floor.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Descent | None:
        if not data:
            return None
        top, cursor = Mark.from_json(data["top"]), Mark.from_json(data["cursor"])
        if top is None or cursor is None:
            return None
        return cls(top, cursor, Mark.from_json(data.get("stop")), _time(data["floor"]))


@dataclass(frozen=True, slots=True)
class Stream:
    order: str | None = None
    head: Mark | None = None
    descent: Descent | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "head": self.head.to_json() if self.head else None,
            "descent": self.descent.to_json() if self.descent else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stream:
        return cls(
            order=data.get("order"),
            head=Mark.from_json(data.get("head")),
            descent=Descent.from_json(data.get("descent")),
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """A failed record Instantly said it would retry."""

    url: str
    at: datetime
    group: str | None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "at": self.at.isoformat(), "group": self.group}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pending:
        group = data.get("group")
        return cls(str(data["url"]), _time(data["at"]), str(group) if group else None)


@dataclass(frozen=True, slots=True)
class Positions:
    streams: Mapping[str, Stream] = field(default_factory=dict)
    pending: Mapping[str, Pending] = field(default_factory=dict)

    def stream(self, url: str) -> Stream:
        return self.streams.get(url) or Stream()

    def with_stream(self, url: str, stream: Stream) -> Positions:
        return replace(self, streams={**self.streams, url: stream})

    def to_json(self) -> dict[str, Any]:
        return {
            "streams": {url: s.to_json() for url, s in self.streams.items()},
            "pending": {i: p.to_json() for i, p in self.pending.items()},
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> Positions:
        data = extra.get(KEY) or {}
        return cls(
            streams={str(u): Stream.from_json(s) for u, s in (data.get("streams") or {}).items()},
            pending={str(i): Pending.from_json(p) for i, p in (data.get("pending") or {}).items()},
        )
