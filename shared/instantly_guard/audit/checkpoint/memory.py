"""An in-process checkpoint store with the same compare-and-swap rule, for backfills and tests."""

from __future__ import annotations

import threading

from instantly_guard.audit.checkpoint.base import Checkpoint
from instantly_guard.errors import ConflictError


class MemoryCheckpointStore:
    """Keeps the checkpoint in memory. A backfill (`export-audit --since`) uses one seeded with
    its start, so it never moves the scheduled export's checkpoint."""

    def __init__(self, initial: Checkpoint | None = None) -> None:
        self._lock = threading.Lock()
        self._state = initial
        self._generation = 0 if initial is None else 1

    def read(self) -> tuple[Checkpoint | None, int]:
        with self._lock:
            return self._state, self._generation

    def write(self, state: Checkpoint, if_generation: int) -> int:
        with self._lock:
            if if_generation != self._generation:
                raise ConflictError(
                    f"checkpoint generation is {self._generation}, not {if_generation}"
                )
            self._state = state
            self._generation += 1
            return self._generation

    def describe(self) -> str:
        return "memory"
