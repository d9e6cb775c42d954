"""The reconciliation's checkpoint: the audit export's `Checkpoint` in a store of its own.

Reused as is (`instantly_guard.audit.checkpoint`), with the same discipline: every write is a
compare-and-swap on the store's generation, the checkpoint keeps the ids of the records handled
within `overlap` of its watermark (a record that became visible late, or was updated in place,
is seen again), and it records Cloud Scheduler runs, so a redelivered run is recognised and an
overlapping one stands aside. Only the store port is used: how the audit export walks its own
log is none of this module's business.

Here an "exported" record is a delivery record the run has *settled*: a success, a failure
whose event was republished (or could not be), a failure a retry delivered. A failure Instantly
will still retry is left unsettled, so later runs look at it again while it is within the
overlap (`Settings` keeps the retry grace below the overlap for that reason).
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


def settle(
    store: CheckpointStore,
    held: Claim,
    settled: list[tuple[datetime, str]],
    *,
    now: datetime,
    overlap: timedelta,
    outcome: str,
) -> int:
    """Advance past the `settled` (timestamp, id) records and close the run, in one write.
    Raises ConflictError when another run wrote since our claim."""
    advanced = held.state.advanced(settled, overlap=overlap, now=now)
    finished = RunRecord(held.record.key, held.record.started_at, now, outcome)
    return store.write(advanced.with_run(finished, now), held.generation)


def local_store(state_dir: Path) -> CheckpointStore:
    return LocalCheckpointStore(state_dir / LOCAL_PATH)


def gcs_store(client: Any, bucket: str, name: str) -> CheckpointStore:
    from instantly_guard.audit.checkpoint.gcs import GcsCheckpointStore

    return GcsCheckpointStore(client, bucket, name)
