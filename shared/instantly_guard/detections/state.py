"""What continuous evaluation keeps between batches and runs, and where.

- `events`: the entries windowed rules read (a burst of MFA failures split across batches and
  runs is still one burst), kept while a rule may still need them: dated within the rules'
  look-back of the newest entry seen (for entries still to come in time order), or written
  within that look-back of now (for older entries a descending or unordered listing, or a
  backfill, writes later). At most `MAX_EVENTS`;
- `fired`: the dedupe keys of findings already written, with when: an incident found again (the
  export's overlap window, a rerun after a failed batch, a backfill) is not reported twice. Kept
  `FIRED_TTL`; the findings' stable insertIds collapse any later repeat in Cloud Logging;
- `incidents`: per windowed incident that fired, its rule, series (whose) and the time span its
  entries covered so far: entries written out of time order show one burst as several groups in
  turn (a partial one, then the whole under another first entry, so another dedupe key), and a
  later group of the same rule and series whose span meets a fired one is that incident. Kept
  `FIRED_TTL` after it was last seen, at most `MAX_INCIDENTS`;
- `names`: key id -> name seen in key entries, to name a rotation's admin key later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from instantly_guard.errors import BackendError

FIRED_TTL = timedelta(days=90)
MAX_NAMES = 10_000
MAX_EVENTS = 20_000
MAX_INCIDENTS = 10_000
SEEN = "_seen"
"""An event's key holding when it was written (our clock), beside `_ts` (its log time)."""


@dataclass(slots=True)
class DetectionState:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """insert id -> the entry's `jsonPayload` (plus `_ts`, the log entry's time)."""
    fired: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    incidents: list[dict[str, str]] = field(default_factory=list)
    """Fired windowed incidents: `rule`, `series`, `first`, `last` (ISO times), `seen`."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "events": self.events,
            "fired": self.fired,
            "names": self.names,
            "incidents": self.incidents,
        }

    @classmethod
    def from_json(cls, data: Any) -> DetectionState:
        """A state from its JSON; anything unreadable starts afresh (fired keys are then backed
        by the findings' stable insertIds)."""
        if not isinstance(data, dict) or data.get("version") != 1:
            return cls()

        def table(name: str) -> dict[str, Any]:
            value = data.get(name)
            return value if isinstance(value, dict) else {}

        incidents = data.get("incidents")
        return cls(
            {k: v for k, v in table("events").items() if isinstance(v, dict)},
            {k: v for k, v in table("fired").items() if isinstance(v, str)},
            {k: v for k, v in table("names").items() if isinstance(v, str)},
            [i for i in incidents if _is_incident(i)] if isinstance(incidents, list) else [],
        )

    def join(
        self,
        rule: str,
        series: str,
        span: tuple[datetime, datetime],
        gap: timedelta,
        now: datetime,
    ) -> bool:
        """Record that `rule` found an incident of `series` over `span` (first, last entry);
        True when it meets one already recorded (its span overlaps, or is within `gap` of,
        this one): the same incident, seen again or more of it. Every incident it meets is
        merged into one, so a late entry that bridges two is one from then on."""
        first, last = span
        met, rest = [], []
        for incident in self.incidents:
            same = incident["rule"] == rule and incident["series"] == series
            if same and _meets(incident, first, last, gap):
                met.append(incident)
            else:
                rest.append(incident)
        for incident in met:
            first = min(first, _time(incident["first"]))
            last = max(last, _time(incident["last"]))
        rest.append(
            {
                "rule": rule,
                "series": series,
                "first": first.isoformat(),
                "last": last.isoformat(),
                "seen": now.isoformat(),
            }
        )
        self.incidents = rest
        return bool(met)

    def prune(self, *, newest: datetime, lookback: timedelta, now: datetime) -> None:
        """Drop what no rule can need any more. An event goes once it is dated more than
        `lookback` before the newest entry seen AND was written more than `lookback` ago: an
        entry written later that is older than the newest seen (descending and unordered
        listings, a backfill) still finds the neighbours it is written with."""
        oldest = (newest - lookback).isoformat()
        settled = (now - lookback).isoformat()
        self.events = {
            k: v
            for k, v in self.events.items()
            if str(v.get("_ts", "")) >= oldest or str(v.get(SEEN, "")) >= settled
        }
        if len(self.events) > MAX_EVENTS:
            # Past the bound, the entries written longest ago go first.
            ranked = sorted(
                self.events.items(),
                key=lambda kv: (str(kv[1].get(SEEN, "")), str(kv[1].get("_ts", ""))),
            )
            self.events = dict(ranked[-MAX_EVENTS:])
        expired = (now - FIRED_TTL).isoformat()
        self.fired = {k: v for k, v in self.fired.items() if v >= expired}
        self.incidents = [i for i in self.incidents if i["seen"] >= expired]
        if len(self.incidents) > MAX_INCIDENTS:
            self.incidents = sorted(self.incidents, key=lambda i: i["seen"])[-MAX_INCIDENTS:]
        if len(self.names) > MAX_NAMES:
            self.names = dict(list(self.names.items())[-MAX_NAMES:])


_INCIDENT_FIELDS = ("rule", "series", "first", "last", "seen")


def _is_incident(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if not all(isinstance(value.get(f), str) for f in _INCIDENT_FIELDS):
        return False
    try:
        _time(value["first"]), _time(value["last"])
    except ValueError:
        return False
    return True


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _meets(incident: dict[str, str], first: datetime, last: datetime, gap: timedelta) -> bool:
    return first <= _time(incident["last"]) + gap and _time(incident["first"]) <= last + gap


class StateStore(Protocol):
    def load(self) -> DetectionState: ...

    def save(self, state: DetectionState) -> None: ...


class MemoryStateStore:
    def __init__(self) -> None:
        self.state = DetectionState()

    def load(self) -> DetectionState:
        return DetectionState.from_json(json.loads(json.dumps(self.state.to_json())))

    def save(self, state: DetectionState) -> None:
        self.state = DetectionState.from_json(json.loads(json.dumps(state.to_json())))


class LocalStateStore:
    """A JSON file, replaced atomically (write a temporary file, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    def load(self) -> DetectionState:
        try:
            return DetectionState.from_json(json.loads(self._path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return DetectionState()
        except ValueError:
            return DetectionState()
        except OSError as exc:
            raise BackendError(f"cannot read {self._path}: {exc.strerror}") from exc

    def save(self, state: DetectionState) -> None:
        temporary = self._path.with_suffix(".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(state.to_json(), handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(self._path)
        except OSError as exc:
            raise BackendError(f"cannot write {self._path}: {exc.strerror}") from exc
