"""One audit entry must never stop the export (issue 18): values that parse as JSON but cannot be
written as they are (a lone surrogate, deep nesting, huge strings) are salvaged and marked.

Through the sandbox and the JSONL sink, through the Cloud Logging stand-in (real client library,
real protobuf limits), and property-based: arbitrary JSON in an entry's fields."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.standins.logging_api import LoggingStandIn

from instantly_guard.audit.checkpoint import LocalCheckpointStore, MemoryCheckpointStore
from instantly_guard.audit.entries import TRUNCATION_MARKER, to_export_entry
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions, StopReason
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.audit.salvage import MAX_DEPTH, SALVAGE_MARKER
from instantly_guard.audit.sinks.gcp import CloudLoggingSink
from instantly_guard.audit.sinks.local import JsonlSink, read_entries
from instantly_guard.instantly import InstantlyClient, RateLimiter
from instantly_guard.instantly.keys import StaticKey
from instantly_guard.instantly.models import AuditLog

from .audit_support import T0, Clock, ListSource, record

OPTIONS = ExportOptions(lookback=timedelta(days=5), checkpoint_interval=timedelta(0))


def nested(depth: int, leaf: Any = "bottom") -> Any:
    value = leaf
    for level in range(depth):
        value = {"level": level, "next": value} if level % 2 else [value]
    return value


ODD = {
    "lone-surrogate": {"user_agent": "Mozilla \ud800 x", "user_name": "\udfff"},
    "nested-300": {"audit_metadata": {"deep": nested(300)}},
    "nested-40": {"audit_metadata": {"deep": nested(40)}},
    "huge-string": {"user_agent": "x" * 3_000_000},
    "surrogate-key": {"audit_metadata": {"\ud83d": "key is a lone surrogate"}},
    "all-at-once": {
        "user_agent": "\ud800" * 10 + "y" * 400_000,
        "audit_metadata": {"deep": nested(300, "\udc00")},
    },
}


def test_odd_entries_from_instantly_are_all_exported_and_marked(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    sb = sandbox_factory(seed="empty")
    now = datetime.now(UTC)
    plain = [sb.add_audit_log(1, at=now - timedelta(hours=3 - i)) for i in range(2)]
    odd = {
        name: sb.add_audit_log(29, at=now - timedelta(minutes=50 - i), **fields)
        for i, (name, fields) in enumerate(ODD.items())
    }
    sink_path = tmp_path / "audit.jsonl"
    with InstantlyClient(
        StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60000)
    ) as client:
        source = ReadAheadSource(ClientPageSource(client, page_size=100))
        store = LocalCheckpointStore(tmp_path / "checkpoint.json")
        summary = Exporter(source, JsonlSink(sink_path), store, OPTIONS).run()

    assert summary.stopped_reason is StopReason.COMPLETE, summary.error
    entries = {e["insertId"]: e for e in read_entries(sink_path)}
    assert set(entries) == {*plain, *odd.values()}
    for name, entry_id in odd.items():
        entry = entries[entry_id]
        if name == "huge-string":  # writable as is: only cut, as before
            assert TRUNCATION_MARKER in entry["jsonPayload"]
            continue
        assert entry["labels"].get("salvaged") == "true", name
        assert entry["jsonPayload"][SALVAGE_MARKER]["problems"], name
    for entry_id in plain:
        assert "salvaged" not in entries[entry_id]["labels"]
    surrogate = entries[odd["lone-surrogate"]]["jsonPayload"]
    assert surrogate["user_agent"] == "Mozilla \\ud800 x"  # the escape, shown not lost
    assert entries[odd["nested-40"]]["jsonPayload"]["audit_metadata"]["deep"] is not None


@pytest.mark.parametrize("name", list(ODD), ids=list(ODD))
def test_odd_entries_reach_cloud_logging(name: str) -> None:
    entry = record(T0, 29, **ODD[name])
    with LoggingStandIn() as standin:
        client = standin.client()
        try:
            CloudLoggingSink(client, project="demo-project", log_id="instantly-audit").write(
                [to_export_entry(entry), to_export_entry(record(T0, 1))]
            )
        finally:
            client.transport.close()
        written = [e for call in standin.calls for e in call.entries]
    assert [w.insert_id for w in written] == [entry.id, written[1].insert_id]
    payload = json_format.MessageToDict(written[0].json_payload)
    assert payload["id"] == entry.id
    assert payload["activity_type"] == 29


# ---- property-based: arbitrary JSON through the export entry path -----------------------------

# Every character, lone surrogates included (hypothesis leaves category Cs out by default).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=30,
)


def _writable(value: Any) -> bool:
    """Whether `value` can be written unchanged: encodable text, finite numbers."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return not _has_nonfinite(value)


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nonfinite(v) for v in value)
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    metadata=st.dictionaries(any_text, json_values, max_size=4),
    user_agent=any_text,
    depth=st.integers(min_value=0, max_value=120),
)
def test_any_parsed_json_is_exported_and_nothing_valid_is_lost(
    tmp_path_factory: pytest.TempPathFactory,
    metadata: dict[str, Any],
    user_agent: str,
    depth: int,
) -> None:
    metadata = {**metadata, "deep": nested(depth)}
    records = [
        record(T0 - timedelta(minutes=5), 1),
        AuditLog.model_validate(
            {
                **record(T0 - timedelta(minutes=3), 29).model_dump(mode="json"),
                "user_agent": user_agent,
                "audit_metadata": metadata,
            }
        ),
        record(T0 - timedelta(minutes=1), 1),
    ]
    path = tmp_path_factory.mktemp("export") / "audit.jsonl"
    exporter = Exporter(
        ListSource(records, order="asc"),
        JsonlSink(path),
        MemoryCheckpointStore(),
        OPTIONS,
        clock=Clock(T0),
    )
    summary = exporter.run()

    assert summary.stopped_reason is StopReason.COMPLETE, summary.error
    entries = {e["insertId"]: e for e in read_entries(path)}
    assert set(entries) == {r.id for r in records}
    payload = entries[records[1].id]["jsonPayload"]
    salvaged = entries[records[1].id]["labels"].get("salvaged") == "true"
    assert salvaged == (SALVAGE_MARKER in payload)
    if _writable(metadata) and _writable(user_agent) and depth < MAX_DEPTH - 2:
        assert not salvaged
        assert payload["audit_metadata"] == metadata
        assert payload["user_agent"] == user_agent


def test_a_lone_surrogate_in_an_id_or_organization_is_written_as_escape_text(
    tmp_path: Path,
) -> None:
    entry = to_export_entry(
        AuditLog(id="id-\ud800", timestamp=T0, organization_id="org-\udfff", activity_type=1)
    )
    JsonlSink(tmp_path / "a.jsonl").write([entry])
    (written,) = read_entries(tmp_path / "a.jsonl")
    assert written["insertId"] == "id-\\ud800"
    assert written["labels"]["organization"] == "org-\\udfff"
