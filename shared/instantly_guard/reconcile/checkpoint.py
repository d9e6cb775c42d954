"""The reconciliation's checkpoint: the audit export's `Checkpoint` in a store of its own.

Reused as is (`instantly_guard.audit.checkpoint`), with the same discipline: every write is a
compare-and-swap on the store's generation, and it records Cloud Scheduler runs, so a redelivered
run is recognised and an overlapping one stands aside (the lease runs from the run's last
heartbeat, renewed by every write). Only the store port and the run records are used: where the
reconciler is in the delivery log lives in `Checkpoint.extra` (`reconcile.position`), written
after every page, so a run cut short by its time budget or killed loses at most one page of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from instantly_guard.audit.checkpoint.base import Checkpoint, CheckpointStore, RunRecord
from instantly_guard.audit.checkpoint.local import LocalCheckpointStore

LOCAL_PATH = Path("reconcile") / "checkpoint.json"


@dataclass(frozen=True, slots=True)
class Claim:
    """A run's hold on the checkpoint: the state it started from and the generation it wrote."""

    state: Checkpoint
    generation: int
    record: RunRecord


class Outcome:
    """Why a run did not start."""

    DUPLICATE = "duplicate"  # this Scheduler run already finished
    BUSY = "busy"  # another run holds the lease, or wrote the checkpoint first


def claim(
    store: CheckpointStore,
    *,
    now: datetime,
    start: datetime,
    run_key: str,
    lease: timedelta,
) -> Claim | str:
    """Record this run as started (one compare-and-swap write), or say why it must not run.

    `start` is where a first run begins. Raises ConflictError when another run wrote between our
    read and write (the caller reports it as BUSY), BackendError when the store fails."""
    state, generation = store.read()
    if state is None:
        state = Checkpoint.starting_at(start)
    previous = state.run(run_key)
    # A run that failed is not done: Cloud Scheduler's retry of it (same key) must run again.
    if previous is not None and previous.finished_at is not None and previous.outcome != "failed":
        return Outcome.DUPLICATE
    active = state.active_run(now, lease)
    if active is not None and active.key != run_key:
        return Outcome.BUSY
    record = RunRecord(key=run_key, started_at=now)
    started = state.with_run(record, now)
    return Claim(started, store.write(started, generation), record)


def local_store(state_dir: Path) -> CheckpointStore:
    return LocalCheckpointStore(state_dir / LOCAL_PATH)


def gcs_store(client: Any, bucket: str, name: str) -> CheckpointStore:
    from instantly_guard.audit.checkpoint.gcs import GcsCheckpointStore

    return GcsCheckpointStore(client, bucket, name)
