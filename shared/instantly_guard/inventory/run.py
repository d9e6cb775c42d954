"""One inventory run: read the workspace, compare it with the stored snapshot, write the change
entries, then store the new snapshot.

Order and failure (docs/inventory.md):

1. read the snapshot and its generation; read every kind, page by page, into sorted record lines
   (a kind that cannot be read fails the run: a partial read must never look like removals);
2. no snapshot yet: one `inventory.baseline` entry. Otherwise merge the stored lines (a stream)
   with the current ones and write one entry per difference, in batches;
3. store the new snapshot only if its generation is still the one read (compare-and-swap).

A crash between 2 and 3 leaves the old snapshot: the next run finds the same differences and
writes the same entries (same insertId and timestamp: collapsed). Of two overlapping runs both
write the same entries and one stores its snapshot; the other's write is refused and it reports
`superseded`. A run that finds nothing writes no entry (the snapshot is still stored, so the
next change's `previous_snapshot_at` stays within one schedule interval).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.errors import ConfigError, ConflictError, GuardError
from instantly_guard.inventory import changes, records
from instantly_guard.inventory.diff import differences, kind_lines
from instantly_guard.inventory.records import KINDS, WORKSPACE, Record, digest, parse_line
from instantly_guard.inventory.snapshot import Header, SnapshotWriter, StoredSnapshot
from instantly_guard.inventory.stores import SnapshotStore

if TYPE_CHECKING:
    from instantly_guard.instantly.client import InstantlyClient

BATCH = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


class WorkspaceReader(Protocol):
    """What the run reads: each kind's records (any order) and the workspace itself."""

    def records(self, kind: str) -> Iterable[Record]: ...


class ClientReader:
    """Reads every kind through the Instantly client, 100 per page (the API's maximum)."""

    def __init__(self, client: InstantlyClient) -> None:
        self._client = client

    def records(self, kind: str) -> Iterable[Record]:
        client = self._client
        if kind == records.MEMBER:
            return map(records.member, client.list_workspace_members(limit=100))
        if kind == records.KEY:
            return map(records.key, client.list_api_keys(limit=100))
        if kind == records.WEBHOOK:
            return map(records.webhook, client.list_webhooks(limit=100))
        if kind == records.BLOCKLIST:
            return map(records.blocklist, client.list_block_list_entries(limit=100))
        if kind == WORKSPACE:
            return [records.workspace(client.get_current_workspace())]
        raise ValueError(f"unknown kind {kind!r}")


class Outcome:
    BASELINE = "baseline"  # first run: one baseline entry
    CHANGED = "changed"  # changes written, snapshot stored
    UNCHANGED = "unchanged"  # nothing written, snapshot stored
    SUPERSEDED = "superseded"  # entries written, another run stored its snapshot first
    FAILED = "failed"


@dataclass(slots=True)
class RunReport:
    outcome: str = Outcome.FAILED
    observed_at: datetime | None = None
    previous_snapshot_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    written: int = 0
    findings: int = 0
    """Findings the detection rules wrote on this run's entries (`inventory.findings`)."""
    snapshot_bytes: int = 0
    sorted_listings: bool = True
    seconds: float = 0.0
    error: GuardError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
            "previous_snapshot_at": (
                self.previous_snapshot_at.isoformat() if self.previous_snapshot_at else None
            ),
            "counts": dict(self.counts),
            "changes": dict(sorted(self.changes.items())),
            "written": self.written,
            "findings": self.findings,
            "snapshot_bytes": self.snapshot_bytes,
            "sorted_listings": self.sorted_listings,
            "seconds": round(self.seconds, 3),
        }


class Inventory:
    def __init__(
        self,
        reader: WorkspaceReader,
        sink: LogSink,
        store: SnapshotStore,
        *,
        clock: Callable[[], datetime] = utc_now,
        batch: int = BATCH,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.store = store
        self._clock = clock
        self._batch = batch

    def run(self) -> RunReport:
        report = RunReport()
        started = time.monotonic()
        try:
            self._run(report)
        except GuardError as exc:
            report.outcome, report.error = Outcome.FAILED, exc
        finally:
            report.seconds = time.monotonic() - started
        return report

    def _read(self, taken_at: datetime) -> tuple[bytes, SnapshotWriter, Record]:
        """Every kind, compressed into the new snapshot as it is listed."""
        workspaces = list(self.reader.records(WORKSPACE))
        if len(workspaces) != 1:
            raise ConfigError("the workspace could not be read (GET /workspaces/current)")
        (workspace,) = workspaces
        writer = SnapshotWriter(Header(taken_at=taken_at, workspace_id=workspace.id))
        for kind in KINDS:
            section = writer.section(kind)
            for record in workspaces if kind == WORKSPACE else self.reader.records(kind):
                section.add(record.line())
            section.close()
        return writer.finish(), writer, workspace

    def _run(self, report: RunReport) -> None:
        raw, generation = self.store.read()
        stored = StoredSnapshot(raw) if raw is not None else None
        del raw  # `stored` holds it
        taken_at = self._clock()
        body, writer, workspace = self._read(taken_at)
        observed_at = self._clock()
        counts = {kind: writer.counts.get(kind, 0) for kind in KINDS}
        report.sorted_listings = writer.streamed
        report.observed_at, report.counts = observed_at, counts
        report.snapshot_bytes = len(body)

        if stored is None:
            state_hash = hashlib.sha256(memoryview(body)[writer.header_bytes :]).hexdigest()[:24]
            entry = changes.baseline(workspace.id, workspace.name, counts, state_hash)
            first = changes.to_export_entry(
                entry, observed_at=observed_at, previous_snapshot_at=None
            )
            self._write([first], report)
            report.changes[changes.BASELINE] = 1
            self._store(body, generation, report, Outcome.BASELINE)
            return
        if stored.header.workspace_id != workspace.id:
            raise ConfigError(
                f"the snapshot in {self.store.describe()} is of workspace "
                f"{stored.header.workspace_id}, the key reads {workspace.id}: give each "
                "workspace its own snapshot object"
            )
        previous = stored.header.taken_at
        report.previous_snapshot_at = previous
        batch: list[ExportEntry] = []
        for change in self._changes(stored, StoredSnapshot(body)):
            report.changes[change.change] = report.changes.get(change.change, 0) + 1
            batch.append(
                changes.to_export_entry(
                    change, observed_at=observed_at, previous_snapshot_at=previous
                )
            )
            if len(batch) >= self._batch:
                self._write(batch, report)
                batch = []
        self._write(batch, report)
        del stored  # the old snapshot is not needed while the new one is stored
        self._store(
            body, generation, report, Outcome.CHANGED if report.written else Outcome.UNCHANGED
        )

    def _changes(self, stored: StoredSnapshot, current: StoredSnapshot) -> Iterator[changes.Change]:
        olds = kind_lines(stored.lines(), KINDS)
        news = kind_lines(current.lines(), KINDS)
        for (kind, old_lines), (_, new_lines) in zip(olds, news, strict=True):
            for old, new in differences(old_lines, new_lines):
                yield from changes.classify(
                    kind,
                    parse_line(old) if old is not None else None,
                    parse_line(new) if new is not None else None,
                    before_hash=digest(old) if old is not None else None,
                    after_hash=digest(new) if new is not None else None,
                )

    def _write(self, batch: Sequence[ExportEntry], report: RunReport) -> None:
        if batch:
            self.sink.write(batch)
            report.written += len(batch)

    def _store(self, body: bytes, generation: int, report: RunReport, outcome: str) -> None:
        try:
            self.store.write(body, generation)
        except ConflictError:
            report.outcome = Outcome.SUPERSEDED
            return
        report.outcome = outcome
