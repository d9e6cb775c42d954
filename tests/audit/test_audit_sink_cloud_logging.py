"""The Cloud Logging path through the real google-cloud-logging client (generated
LoggingServiceV2Client over gRPC) against an in-process stand-in of WriteLogEntries."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import grpc
import pytest
from google.logging.type import log_severity_pb2
from google.protobuf import json_format
from tests.standins.logging_api import MAX_ENTRY_BYTES, LoggingStandIn

from instantly_guard.audit.checkpoint import MemoryCheckpointStore
from instantly_guard.audit.entries import MALFORMED_MARKER, TRUNCATION_MARKER, to_export_entry
from instantly_guard.audit.exporter import Exporter, ExportOptions
from instantly_guard.audit.sinks.gcp import CloudLoggingSink
from instantly_guard.errors import BackendError
from instantly_guard.instantly import salvage

from .audit_support import T0, Clock, ListSource, record, spread

pytestmark = pytest.mark.gcp


@pytest.fixture
def standin():  # type: ignore[no-untyped-def]
    with LoggingStandIn() as server:
        yield server


@pytest.fixture
def sink(standin):  # type: ignore[no-untyped-def]
    client = standin.client()
    yield CloudLoggingSink(client, project="demo-project", log_id="instantly-audit")
    client.transport.close()


def _payload(entry) -> dict:  # type: ignore[no-untyped-def]
    return json_format.MessageToDict(entry.json_payload)


def test_an_export_writes_batches_of_at_most_1000_with_partial_success(standin, sink) -> None:  # type: ignore[no-untyped-def]
    records = spread(2500, T0 - timedelta(hours=2), timedelta(seconds=2), activity_types=(1, 37))
    exporter = Exporter(
        ListSource(records, page_size=1000),
        sink,
        MemoryCheckpointStore(),
        ExportOptions(checkpoint_interval=timedelta(0)),
        clock=Clock(T0),
    )

    summary = exporter.run()

    assert summary.exported == 2500
    assert [len(call.entries) for call in standin.calls] == [1000, 1000, 500]
    assert all(call.partial_success for call in standin.calls)
    assert {call.log_name for call in standin.calls} == {
        "projects/demo-project/logs/instantly-audit"
    }
    assert {call.resource_type for call in standin.calls} == {"global"}
    written = [e.insert_id for call in standin.calls for e in call.entries]
    assert sorted(written) == sorted(r.id for r in records)
    by_id = {r.id: (r.timestamp, r.id) for r in records}
    for call in standin.calls:  # a page of the (random) listing, written oldest first
        keys = [by_id[e.insert_id] for e in call.entries]
        assert keys == sorted(keys)


def test_each_entry_carries_event_time_insert_id_severity_labels_and_payload(standin, sink) -> None:  # type: ignore[no-untyped-def]
    created = record(
        T0.replace(microsecond=123000),
        37,
        api_key_id="key-1",
        user_name="ops",
        audit_metadata={"name": "rotation"},
        extra_field="kept",
    )
    login = record(T0 + timedelta(seconds=1), 1)

    sink.write([to_export_entry(created), to_export_entry(login)])

    first, second = standin.calls[0].entries
    assert first.insert_id == created.id
    assert first.timestamp.ToDatetime(tzinfo=UTC) == created.timestamp
    assert first.severity == log_severity_pb2.WARNING
    assert second.severity == log_severity_pb2.INFO
    assert dict(first.labels) == {
        "organization": "org-1",
        "activity": "api_key_created",
        "from_api": "true",
    }
    payload = _payload(first)
    assert payload["activity"] == "api_key_created"
    assert payload["id"] == created.id
    assert payload["api_key_id"] == "key-1"
    assert payload["audit_metadata"] == {"name": "rotation"}
    assert payload["extra_field"] == "kept"


def test_an_oversized_entry_is_truncated_with_a_marker_and_its_batch_succeeds(
    standin, sink
) -> None:  # type: ignore[no-untyped-def]
    huge = record(T0, 34, audit_metadata={"leads": "x" * 400_000})
    normal = record(T0 + timedelta(seconds=1), 1)

    sink.write([to_export_entry(huge), to_export_entry(normal)])

    call = standin.calls[0]
    assert call.status == grpc.StatusCode.OK
    assert len(call.accepted) == 2
    stored = call.entries[0]
    assert stored.ByteSize() <= MAX_ENTRY_BYTES
    payload = _payload(stored)
    assert payload[TRUNCATION_MARKER]["fields"] == ["audit_metadata"]
    assert payload[TRUNCATION_MARKER]["original_bytes"] > 400_000
    assert payload["audit_metadata"].endswith("...[truncated]")
    assert payload["id"] == huge.id  # identifying fields are never cut


def test_an_entry_small_as_json_but_large_as_protobuf_is_truncated_too(standin, sink) -> None:  # type: ignore[no-untyped-def]
    dense = record(T0, 1, audit_metadata={"ids": [i % 10 for i in range(40_000)]})  # ~80 KB JSON
    assert len(json.dumps(dense.model_dump(mode="json"))) < 200_000

    sink.write([to_export_entry(dense)])

    stored = standin.calls[0].entries[0]
    assert standin.calls[0].status == grpc.StatusCode.OK
    assert stored.ByteSize() <= MAX_ENTRY_BYTES
    assert TRUNCATION_MARKER in _payload(stored)


def test_a_batch_within_9_mb_as_json_but_over_10_mb_encoded_is_split_not_refused(
    standin, sink
) -> None:  # type: ignore[no-untyped-def]
    # ~6 KB of JSON each, ~22 KB each as a protobuf Struct (11 bytes per number): the JSON
    # budget lets ~1,000 into one batch, ~22 MB encoded, which Cloud Logging refuses whole.
    dense = {"ids": [i % 1000 for i in range(2000)]}
    records = [
        record(T0 - timedelta(minutes=30) + timedelta(seconds=i), 1, audit_metadata=dense)
        for i in range(1000)
    ]
    exporter = Exporter(
        ListSource(records, page_size=1000),
        sink,
        MemoryCheckpointStore(),
        ExportOptions(checkpoint_interval=timedelta(0)),
        clock=Clock(T0),
    )

    summary = exporter.run()

    assert summary.error is None, summary.error
    assert summary.batches == 1  # one batch by the JSON estimate, sent as several requests
    assert len(standin.calls) >= 3
    assert all(call.status == grpc.StatusCode.OK for call in standin.calls)
    assert all(
        sum(e.ByteSize() for e in call.entries) <= 10 * 1000 * 1000 for call in standin.calls
    )
    written = [e.insert_id for e in standin.stored]
    assert written == [r.id for r in records]  # in order, each exactly once
    assert _payload(standin.stored[0])["audit_metadata"]["ids"][:3] == [0, 1, 2]  # not cut


def test_a_rejected_entry_is_replaced_by_a_stub_and_the_others_are_written(standin, sink) -> None:  # type: ignore[no-untyped-def]
    entries = [to_export_entry(record(T0 + timedelta(seconds=i), 1)) for i in range(5)]
    poison = entries[2].insert_id
    standin.reject(lambda e: e.insert_id == poison and "_export_error" not in e.json_payload.fields)

    sink.write(entries)

    first, retry = standin.calls
    assert first.partial_success
    assert first.status == grpc.StatusCode.INVALID_ARGUMENT
    assert len(first.accepted) == 4  # partial success: the valid entries were written
    assert [e.insert_id for e in retry.entries] == [poison]
    stub = _payload(retry.entries[0])
    assert "refused" in stub["_export_error"]
    assert set(standin.unique_entries()) == {
        (e.insert_id, int(e.timestamp.timestamp()), e.timestamp.microsecond * 1000) for e in entries
    }


def test_an_entry_rejected_even_as_a_stub_fails_the_batch_for_good(standin, sink) -> None:  # type: ignore[no-untyped-def]
    entries = [to_export_entry(record(T0 + timedelta(seconds=i), 1)) for i in range(3)]
    standin.reject(lambda e: e.insert_id == entries[1].insert_id)

    with pytest.raises(BackendError, match="even as stubs") as caught:
        sink.write(entries)
    assert not caught.value.retryable


def test_unavailable_is_retried_by_the_client_library(standin, sink) -> None:  # type: ignore[no-untyped-def]
    standin.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)

    sink.write([to_export_entry(record(T0, 1))])

    assert len(standin.calls) == 3
    assert len(standin.stored) == 1


def test_permission_denied_is_permanent_and_names_the_role(standin, sink) -> None:  # type: ignore[no-untyped-def]
    standin.fail_next(grpc.StatusCode.PERMISSION_DENIED)

    with pytest.raises(BackendError, match=r"roles/logging\.logWriter") as caught:
        sink.write([to_export_entry(record(T0, 1))])
    assert not caught.value.retryable


def test_a_rewritten_batch_collapses_by_insert_id_and_timestamp(standin, sink) -> None:  # type: ignore[no-untyped-def]
    entries = [to_export_entry(record(T0 + timedelta(seconds=i), 1)) for i in range(10)]
    sink.write(entries)
    sink.write(entries[5:])

    assert len(standin.stored) == 15
    assert len(standin.unique_entries()) == 10


def test_a_malformed_entry_reaches_cloud_logging_as_sent_with_its_marker(standin, sink) -> None:  # type: ignore[no-untyped-def]
    raw = {
        "id": "019ffad2-9b83-7eb2-a5c2-000000000001",
        "timestamp": "not-a-time",
        "organization_id": "org-1",
        "activity_type": 20,
        "ip_address": None,
        "from_api": None,
        "audit_metadata": [1, "two", {"three": None}],
    }
    entry = salvage.audit_log(raw)

    sink.write([to_export_entry(entry)])

    (written,) = standin.calls[0].entries
    assert written.insert_id == raw["id"]
    assert written.timestamp.ToDatetime(tzinfo=UTC) == salvage.uuid7_time(raw["id"])
    assert dict(written.labels)["malformed"] == "true"
    assert dict(written.labels)["from_api"] == "unknown"
    payload = _payload(written)
    assert payload["timestamp"] == "not-a-time"
    assert payload["audit_metadata"] == [1, "two", {"three": None}]
    assert set(payload[MALFORMED_MARKER]) == {"problems", "substituted"}
