"""An interrupted or overlapping run never loses or doubles a change; a run that cannot read
everything stores nothing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.errors import BackendError
from instantly_guard.inventory.run import Outcome
from instantly_guard.inventory.service import local_sink
from instantly_guard.inventory.stores import LocalSnapshotStore
from instantly_sandbox import Sandbox
from instantly_sandbox.seed import MEMBER_OUTSIDE, MEMBER_PENDING

from .inventory_support import Clock, Person, changes, inventory_entries, log_path, service

SNAPSHOT = Path("inventory") / "snapshot.bin"


class CrashingStore(LocalSnapshotStore):
    """The real file store, but the process "dies" before the snapshot is written."""

    def write(self, body: bytes, if_generation: int) -> int:
        raise BackendError("killed before the snapshot was stored")


class FailingSink:
    """The real JSONL sink that fails on its `fail_at`-th batch (Cloud Logging down mid-run)."""

    def __init__(self, inner: JsonlSink, fail_at: int) -> None:
        self.inner, self.fail_at, self.batches = inner, fail_at, 0

    def write(self, entries: Sequence[ExportEntry]) -> None:
        self.batches += 1
        if self.batches == self.fail_at:
            raise BackendError("Cloud Logging unavailable")
        self.inner.write(entries)

    def describe(self) -> str:
        return self.inner.describe()


class GatedStore(LocalSnapshotStore):
    """Two runs read the same snapshot before either stores its own (an overlap)."""

    def __init__(self, path: Path, barrier: threading.Barrier) -> None:
        super().__init__(path)
        self.barrier = barrier

    def read(self) -> tuple[bytes | None, int]:
        state = super().read()
        self.barrier.wait(timeout=30)
        return state


def _promote(sb: Sandbox, email: str = MEMBER_PENDING) -> None:
    with Person(sb) as person:
        person.call(
            "PATCH", f"/workspace-members/{person.member_id(email)}", json={"role": "admin"}
        )


def test_a_crash_before_the_snapshot_is_stored_rewrites_the_same_entries(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)
    svc.run()
    _promote(sandbox)
    crashed = service(sandbox, tmp_path, clock, store=CrashingStore(tmp_path / SNAPSHOT))
    clock.advance()

    report = crashed.run()
    assert report.error is not None
    clock.advance()
    again = svc.run()

    assert again.outcome == Outcome.CHANGED
    raw = [
        e
        for e in inventory_entries(tmp_path, unique=False)
        if e["labels"]["change"] != "inventory.baseline"
    ]
    assert len(raw) == 2  # written twice...
    assert raw[0]["insertId"] == raw[1]["insertId"]
    assert raw[0]["timestamp"] == raw[1]["timestamp"]  # ...so Cloud Logging keeps one
    assert changes(tmp_path) == [("member.role_changed", MEMBER_PENDING)]
    clock.advance()
    assert svc.run().outcome == Outcome.UNCHANGED
    svc.close()
    crashed.close()


def test_a_sink_failure_mid_run_stores_no_snapshot_and_the_next_run_writes_all(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)
    svc.run()
    _promote(sandbox)
    with Person(sandbox) as person:
        person.call("DELETE", f"/workspace-members/{person.member_id(MEMBER_OUTSIDE)}")
    failing = service(sandbox, tmp_path, clock, sink=FailingSink(local_sink(tmp_path), 2))
    failing.inventory._batch = 1  # one entry per batch: the second write fails
    clock.advance()

    report = failing.run()

    assert report.outcome == Outcome.FAILED
    assert report.written == 1
    assert (tmp_path / SNAPSHOT).exists()
    clock.advance()
    assert svc.run().outcome == Outcome.CHANGED
    assert sorted(changes(tmp_path)) == [
        ("member.removed", MEMBER_OUTSIDE),
        ("member.role_changed", MEMBER_PENDING),
    ]
    svc.close()
    failing.close()


def test_overlapping_runs_write_each_change_once_and_one_stores_the_snapshot(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    clock = Clock()
    first = service(sandbox, tmp_path, clock)
    first.run()
    _promote(sandbox)
    barrier = threading.Barrier(2)
    runs = [
        service(sandbox, tmp_path, clock, store=GatedStore(tmp_path / SNAPSHOT, barrier))
        for _ in range(2)
    ]
    clock.advance()
    reports: list = [None, None]
    threads = [
        threading.Thread(target=lambda i=i: reports.__setitem__(i, runs[i].run())) for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(r.outcome for r in reports) == [Outcome.CHANGED, Outcome.SUPERSEDED]
    assert changes(tmp_path) == [("member.role_changed", MEMBER_PENDING)]
    raw = [
        e
        for e in inventory_entries(tmp_path, unique=False)
        if e["labels"]["change"] != "inventory.baseline"
    ]
    assert len({(e["insertId"], e["timestamp"]) for e in raw}) == 1
    clock.advance()
    assert first.run().outcome == Outcome.UNCHANGED
    for svc in (first, *runs):
        svc.close()


def test_a_failed_read_of_one_kind_stores_nothing_and_never_reports_removals(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)
    svc.run()
    before = (tmp_path / SNAPSHOT).read_bytes()
    sandbox.faults.fail_next("GET /block-lists-entries", mode="error_503")
    clock.advance()

    report = svc.run()

    assert report.outcome == Outcome.FAILED
    assert (tmp_path / SNAPSHOT).read_bytes() == before
    assert changes(tmp_path) == []
    svc.close()


def test_a_key_without_a_read_scope_fails_as_a_permanent_scope_problem(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from instantly_guard.inventory.service import build_service, respond

    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": sandbox.base_url,
        "INSTANTLY_API_KEY": sandbox.add_key("narrow", ["api_keys:read"]).key,
    }
    svc = build_service(env, client_options={"max_retries": 0})

    response = respond(svc.run())

    assert response.status == 500
    assert response.body["error"]["kind"] == "missing_scope"
    assert not (tmp_path / SNAPSHOT).exists()
    assert not log_path(tmp_path).exists()
    svc.close()


def test_a_snapshot_of_another_workspace_is_refused(sandbox_factory, tmp_path: Path) -> None:
    one, other = sandbox_factory(seed="demo"), sandbox_factory(seed="demo")
    first, second = service(one, tmp_path), service(other, tmp_path)
    first.run()

    report = second.run()
    first.close()
    second.close()

    assert report.outcome == Outcome.FAILED
    assert "workspace" in str(report.error)
    assert changes(tmp_path) == []


@pytest.mark.parametrize("variant", ["full", "absent", "null"])
def test_listed_key_values_never_reach_the_log(
    sandbox_factory, tmp_path: Path, variant: str
) -> None:
    """Whatever a key listing shows in `key` (the full value, nothing), it is never read."""
    sb = sandbox_factory(seed="demo", variants={"listed_key": variant})
    clock = Clock()
    svc = service(sb, tmp_path, clock)
    svc.run()
    created = sb.add_key("late", ["leads:read"])
    clock.advance()
    assert svc.run().outcome == Outcome.CHANGED
    assert changes(tmp_path) == [("key.created", "late")]
    text = log_path(tmp_path).read_text() + (tmp_path / SNAPSHOT).read_bytes().hex()
    assert created.key not in text
    assert all(k.key not in log_path(tmp_path).read_text() for k in sb.state.api_keys.values())
    svc.close()
