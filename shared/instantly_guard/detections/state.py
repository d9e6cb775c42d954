"""What continuous evaluation keeps between batches and runs, and where.

- `events`: the entries windowed rules read, for as long as a rule looks back (a burst of MFA
  failures split across two export runs is still one burst);
- `fired`: the dedupe keys of findings already written, with when: an incident found again (the
  export's overlap window, a rerun after a failed batch, a backfill) is not reported twice. Kept
  `FIRED_TTL`; the findings' stable insertIds collapse any later repeat in Cloud Logging;
- `names`: key id -> name seen in key entries, to name a rotation's admin key later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from instantly_guard.errors import BackendError

FIRED_TTL = timedelta(days=90)
MAX_NAMES = 10_000


@dataclass(slots=True)
class DetectionState:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """insert id -> the entry's `jsonPayload` (plus `_ts`, the log entry's time)."""
    fired: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "events": self.events, "fired": self.fired, "names": self.names}

    @classmethod
    def from_json(cls, data: Any) -> DetectionState:
        """A state from its JSON; anything unreadable starts afresh (fired keys are then backed
        by the findings' stable insertIds)."""
        if not isinstance(data, dict) or data.get("version") != 1:
            return cls()

        def table(name: str) -> dict[str, Any]:
            value = data.get(name)
            return value if isinstance(value, dict) else {}

        return cls(
            {k: v for k, v in table("events").items() if isinstance(v, dict)},
            {k: v for k, v in table("fired").items() if isinstance(v, str)},
            {k: v for k, v in table("names").items() if isinstance(v, str)},
        )

    def prune(self, *, newest: datetime, lookback: timedelta, now: datetime) -> None:
        oldest = (newest - lookback).isoformat()
        self.events = {k: v for k, v in self.events.items() if str(v.get("_ts", "")) >= oldest}
        expired = (now - FIRED_TTL).isoformat()
        self.fired = {k: v for k, v in self.fired.items() if v >= expired}
        if len(self.names) > MAX_NAMES:
            self.names = dict(list(self.names.items())[-MAX_NAMES:])


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
