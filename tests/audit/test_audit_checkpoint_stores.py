"""Checkpoint stores: the file store and Cloud Storage (through the real google-cloud-storage
client against a stand-in that enforces ifGenerationMatch), compare-and-swap included."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from tests.standins.gcs import GcsStandIn

from instantly_guard.audit.checkpoint import Checkpoint, LocalCheckpointStore, RunRecord
from instantly_guard.errors import BackendError, ConflictError

from .audit_support import T0

STATE = Checkpoint.starting_at(T0).with_run(RunRecord("job@t", started_at=T0), T0)


def test_checkpoint_round_trips_through_json() -> None:
    state = STATE.advanced(
        [(T0 + timedelta(seconds=i), f"id-{i}") for i in range(5)], overlap=timedelta(minutes=1)
    )
    assert Checkpoint.from_bytes(state.to_bytes()) == state


def test_an_unreadable_checkpoint_is_a_permanent_backend_error() -> None:
    with pytest.raises(BackendError, match="unreadable") as caught:
        Checkpoint.from_bytes(b"{not json")
    assert not caught.value.retryable


# -- local file ---------------------------------------------------------------------------------


def test_local_store_starts_empty_and_advances_its_generation(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "audit" / "checkpoint.json")
    assert store.read() == (None, 0)
    generation = store.write(STATE, 0)
    assert store.read() == (STATE, generation)
    assert store.write(STATE, generation) == generation + 1


def test_local_store_refuses_a_stale_generation(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "checkpoint.json")
    generation = store.write(STATE, 0)
    store.write(STATE, generation)
    with pytest.raises(ConflictError):
        store.write(STATE, generation)
    with pytest.raises(ConflictError):
        store.write(STATE, 0)  # "must not exist yet"


def test_exactly_one_of_many_racing_threads_wins(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "checkpoint.json")
    generation = store.write(STATE, 0)
    wins: list[int] = []
    barrier = threading.Barrier(16)

    def contend() -> None:
        barrier.wait()
        with contextlib.suppress(ConflictError):
            wins.append(store.write(STATE, generation))

    threads = [threading.Thread(target=contend) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins == [generation + 1]


def _write_from_process(path: str, generation: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        LocalCheckpointStore(Path(path)).write(STATE, generation)
        results.put("won")
    except ConflictError:
        results.put("lost")


def test_exactly_one_of_several_processes_wins(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    generation = LocalCheckpointStore(path).write(STATE, 0)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    procs = [
        context.Process(target=_write_from_process, args=(str(path), generation, results))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["lost", "lost", "lost", "won"]


def test_a_corrupt_local_checkpoint_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text("garbage")
    store = LocalCheckpointStore(path)
    with pytest.raises(BackendError):
        store.read()
    assert path.read_text() == "garbage"


# -- Cloud Storage --------------------------------------------------------------------------------


@pytest.fixture
def gcs():  # type: ignore[no-untyped-def]
    with GcsStandIn() as standin:
        yield standin


def _gcs_store(gcs: GcsStandIn, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from google.cloud.storage import Client

    from instantly_guard.audit.checkpoint.gcs import GcsCheckpointStore

    # The way the client is pointed at an emulator: STORAGE_EMULATOR_HOST (anonymous credentials).
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    return GcsCheckpointStore(
        Client(project="test-project"), "audit-bucket", "instantly-audit/checkpoint.json"
    )


@pytest.mark.gcp
def test_gcs_store_reads_nothing_then_creates_the_object_only_if_absent(gcs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _gcs_store(gcs, monkeypatch)
    assert store.read() == (None, 0)

    generation = store.write(STATE, 0)

    assert store.read() == (STATE, generation)
    data, stored_generation = gcs.objects["audit-bucket/instantly-audit/checkpoint.json"]
    assert stored_generation == generation
    assert Checkpoint.from_bytes(data) == STATE
    assert store.describe() == "gs://audit-bucket/instantly-audit/checkpoint.json"


@pytest.mark.gcp
def test_gcs_store_loses_the_compare_and_swap_to_another_writer(gcs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _gcs_store(gcs, monkeypatch)
    generation = store.write(STATE, 0)
    other = STATE.with_run(RunRecord("other@t", started_at=T0), T0)
    gcs.put("audit-bucket", "instantly-audit/checkpoint.json", other.to_bytes())  # a rival run

    with pytest.raises(ConflictError, match="another run"):
        store.write(STATE, generation)

    assert gcs.precondition_failures == 1
    assert store.read()[0] == other  # the rival's checkpoint is untouched


@pytest.mark.gcp
def test_gcs_store_refuses_to_create_over_an_existing_object(gcs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _gcs_store(gcs, monkeypatch)
    store.write(STATE, 0)
    rival = STATE.with_run(RunRecord("rival@t", started_at=T0), T0)
    with pytest.raises(ConflictError):
        store.write(rival, 0)


@pytest.mark.gcp
def test_gcs_write_whose_answer_was_lost_is_recognised_as_ours(gcs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _gcs_store(gcs, monkeypatch)
    generation = store.write(STATE, 0)
    newer = STATE.advanced([(T0, "id-1")], overlap=timedelta(minutes=1))
    gcs.lose_next_response()  # stored, then the connection drops; the client retries -> 412

    new_generation = store.write(newer, generation)

    assert gcs.precondition_failures == 1
    assert store.read() == (newer, new_generation)


@pytest.mark.gcp
def test_gcs_refusal_is_a_permanent_backend_error(gcs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _gcs_store(gcs, monkeypatch)
    gcs.fail_next(403)
    with pytest.raises(BackendError) as caught:
        store.read()
    assert not caught.value.retryable
    assert "403" in str(caught.value)


@pytest.mark.gcp
def test_gcs_transient_error_is_retried_by_the_client(gcs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _gcs_store(gcs, monkeypatch)
    generation = store.write(STATE, 0)
    gcs.fail_next(503)
    assert store.write(STATE.with_run(RunRecord("x", started_at=T0), T0), generation) > generation


@pytest.mark.gcp
def test_an_exporter_that_loses_the_gcs_compare_and_swap_stops_without_writing_more(
    gcs, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The exporter on the real Cloud Storage client: a rival run writes the checkpoint object
    after our first batch; our next checkpoint write gets 412, the run ends `lost_race` (no
    error, so 200), writes no further batch, and leaves the rival's checkpoint as it was."""
    from instantly_guard.audit.exporter import Exporter, ExportOptions, StopReason

    from .audit_support import Clock, ListSource, MemorySink, spread

    store = _gcs_store(gcs, monkeypatch)
    now = T0 + timedelta(days=1)
    records = spread(3000, now - timedelta(hours=3), timedelta(seconds=1))
    rival = Checkpoint.starting_at(T0).with_run(RunRecord("rival@t", started_at=now), now)

    class RivalWritesAfterOurFirstBatch(MemorySink):
        def write(self, entries):  # type: ignore[no-untyped-def]
            super().write(entries)
            if len(self.batches) == 1:
                gcs.put("audit-bucket", "instantly-audit/checkpoint.json", rival.to_bytes())

    sink = RivalWritesAfterOurFirstBatch()
    exporter = Exporter(
        ListSource(records, page_size=1000),
        sink,
        store,
        ExportOptions(checkpoint_interval=timedelta(0)),
        clock=Clock(now),
    )

    summary = exporter.run()

    assert summary.stopped_reason is StopReason.LOST_RACE
    assert summary.error is None
    assert sink.batches == [1000]
    assert gcs.precondition_failures == 1
    assert store.read()[0] == rival
