"""Severity mapping, log-entry building (truncation included), batching and the JSONL sink."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from instantly_guard.audit.batching import MAX_BATCH_BYTES, batches
from instantly_guard.audit.entries import (
    MAX_PAYLOAD_BYTES,
    TRUNCATION_MARKER,
    ExportEntry,
    fit_payload,
    to_export_entry,
)
from instantly_guard.audit.severity import ACTIVITIES, Severity, activity
from instantly_guard.audit.sinks.local import JsonlSink, read_entries
from instantly_guard.instantly.models import AuditLog

from .audit_support import T0, record

RANK = {Severity.INFO: 0, Severity.NOTICE: 1, Severity.WARNING: 2, Severity.ERROR: 3}
DOCUMENTED = [*range(1, 13), *range(18, 39)]


def test_every_documented_activity_type_has_a_name_and_a_severity() -> None:
    assert sorted(ACTIVITIES) == DOCUMENTED
    assert len({a.name for a in ACTIVITIES.values()}) == len(ACTIVITIES)


@pytest.mark.parametrize(
    ("activity_type", "name"),
    [
        (37, "api_key_created"),
        (38, "api_key_deleted"),
        (20, "webhook_disabled"),
        (26, "totp_disabled"),
        (30, "mfa_failed_too_many_times"),
        (34, "lead_exported"),
    ],
)
def test_security_relevant_activities_rank_above_routine_logins(
    activity_type: int, name: str
) -> None:
    found = activity(activity_type)
    assert found.name == name
    assert RANK[found.severity] >= RANK[Severity.WARNING] > RANK[activity(1).severity]


def test_repeated_mfa_failure_is_the_most_severe() -> None:
    assert activity(30).severity is Severity.ERROR
    assert all(RANK[a.severity] <= RANK[Severity.ERROR] for a in ACTIVITIES.values())


def test_an_unknown_activity_type_is_kept_at_notice() -> None:
    found = activity(99)
    assert (found.name, found.severity) == ("activity_99", Severity.NOTICE)


def test_entry_uses_the_event_time_and_the_instantly_id() -> None:
    log = record(T0, 26, user_name="alice", audit_metadata={"device": "x"})
    entry = to_export_entry(log)
    assert entry.insert_id == log.id
    assert entry.timestamp == T0
    assert entry.severity == "WARNING"
    assert entry.labels == {
        "organization": "org-1",
        "activity": "totp_disabled",
        "from_api": "true",
    }
    assert entry.payload["activity"] == "totp_disabled"
    assert entry.payload["user_name"] == "alice"
    assert entry.payload["audit_metadata"] == {"device": "x"}
    assert entry.size >= len(entry.payload_json)
    assert entry.payload == json.loads(log.model_dump_json()) | {"activity": "totp_disabled"}


def test_a_naive_timestamp_is_taken_as_utc() -> None:
    log = AuditLog(
        id="a",
        timestamp=datetime(2026, 3, 1, 12, 0),
        organization_id="o",
        activity_type=1,
        ip_address="x",
        from_api=False,
    )
    assert to_export_entry(log).timestamp == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_payload_that_fits_is_left_alone() -> None:
    payload = {"id": "a", "audit_metadata": {"k": "v"}}
    assert fit_payload(payload, 1000)[0] is payload


def test_an_oversized_payload_is_cut_largest_field_first_and_marked() -> None:
    payload = {
        "id": "a",
        "activity": "x",
        "user_agent": "u" * 5000,
        "audit_metadata": {"big": "é" * 20_000},
    }
    fitted, size = fit_payload(payload, 8000)
    assert size <= 8000
    assert fitted[TRUNCATION_MARKER]["fields"][0] == "audit_metadata"
    assert fitted[TRUNCATION_MARKER]["original_bytes"] > 40_000
    assert fitted["id"] == "a"
    assert fitted["audit_metadata"].endswith("...[truncated]")
    json.dumps(fitted)  # still valid (no split multi-byte character)


def test_truncation_keeps_the_entry_within_the_payload_limit() -> None:
    entry = to_export_entry(record(T0, 34, audit_metadata={"rows": ["x" * 100] * 5000}))
    assert len(json.dumps(entry.payload, ensure_ascii=False).encode()) <= MAX_PAYLOAD_BYTES
    assert entry.payload[TRUNCATION_MARKER]["fields"] == ["audit_metadata"]


def _entry(size: int, n: int = 0) -> ExportEntry:
    return ExportEntry(f"id-{n}", T0, "INFO", {}, "{}", size)


def test_batches_hold_at_most_1000_entries_and_keep_the_order() -> None:
    out = list(batches(_entry(100, i) for i in range(2001)))
    assert [len(b) for b in out] == [1000, 1000, 1]
    assert [e.insert_id for b in out for e in b] == [f"id-{i}" for i in range(2001)]


def test_batches_stay_under_nine_megabytes() -> None:
    out = list(batches(_entry(200_000, i) for i in range(100)))
    assert all(sum(e.size for e in b) <= MAX_BATCH_BYTES for b in out)
    assert [len(b) for b in out] == [45, 45, 10]


def test_an_entry_bigger_than_the_budget_travels_alone() -> None:
    out = list(batches([_entry(10), _entry(50, 1), _entry(10, 2)], max_bytes=40))
    assert [[e.insert_id for e in b] for b in out] == [["id-0"], ["id-1"], ["id-2"]]


def test_no_empty_batches() -> None:
    assert list(batches([])) == []


def test_jsonl_sink_writes_cloud_logging_shaped_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "instantly-audit.jsonl"
    sink = JsonlSink(path)
    log = record(T0 + timedelta(milliseconds=5), 38)
    sink.write([to_export_entry(log)])

    (line,) = read_entries(path)
    assert line == {
        "logName": "instantly-audit",
        "insertId": log.id,
        "timestamp": "2026-03-01T12:00:00.005000Z",
        "severity": "WARNING",
        "labels": {"organization": "org-1", "activity": "api_key_deleted", "from_api": "true"},
        "jsonPayload": to_export_entry(log).payload,
    }


def test_jsonl_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    sink = JsonlSink(path)
    big = {"audit_metadata": {"blob": "y" * 50_000}}

    def write(worker: int) -> None:
        for i in range(10):
            sink.write(
                [to_export_entry(record(T0 + timedelta(seconds=i), 1, **big)) for _ in range(5)]
            )

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(read_entries(path))) == 6 * 10 * 5


def test_reading_unique_entries_collapses_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    sink = JsonlSink(path)
    entries = [to_export_entry(record(T0, 1)) for _ in range(3)]
    sink.write(entries)
    sink.write(entries[1:])
    assert len(list(read_entries(path))) == 5
    assert [e["insertId"] for e in read_entries(path, unique=True)] == [
        e.insert_id for e in entries
    ]
