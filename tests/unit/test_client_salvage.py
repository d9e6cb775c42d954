"""One malformed audit entry does not fail its page: it is read as a `MalformedAuditLog` that keeps
what is known, names what is not, and is exported with a marker (and logged once)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.instantly_fakes import ScriptedApi, audit_log, make_client, ok, page

from instantly_guard.audit.entries import MALFORMED_MARKER, to_export_entry
from instantly_guard.errors import UnexpectedResponseError
from instantly_guard.instantly import salvage
from instantly_guard.instantly.models import AuditLog, MalformedAuditLog


def _entries(*items: object) -> list[AuditLog]:
    client, _ = make_client(ScriptedApi(page(list(items))), max_retries=0)
    return list(client.iter_audit_logs())


def test_an_unparseable_timestamp_takes_the_time_of_the_uuid7_id() -> None:
    good = audit_log()
    bad = audit_log(timestamp="yesterday-ish")
    first, second = _entries(good, bad)
    assert type(first) is AuditLog
    assert isinstance(second, MalformedAuditLog)
    assert second.id == bad["id"]
    assert second.timestamp == salvage.uuid7_time(bad["id"])
    assert second.substituted == {"timestamp": "time of its UUIDv7 id"}
    assert any(p.startswith("timestamp:") for p in second.problems)
    assert "yesterday-ish" not in " ".join(second.problems)  # reasons, never values
    assert second.raw == bad


def test_a_missing_id_gets_a_stable_one_from_the_entrys_content() -> None:
    bad = audit_log()
    del bad["id"]
    (one,) = _entries(bad)
    (again,) = _entries(dict(bad))
    assert isinstance(one, MalformedAuditLog)
    assert one.id.startswith(salvage.MALFORMED_ID_PREFIX)
    assert one.id == again.id  # a re-export collapses in Cloud Logging
    assert one.timestamp == datetime(2026, 8, 13, 11, 11, 58, 15000, tzinfo=UTC)


def test_an_entry_that_is_not_even_an_object_is_kept() -> None:
    (entry,) = _entries("surprise")
    assert isinstance(entry, MalformedAuditLog)
    assert entry.raw == {"value": "surprise"}
    assert entry.substituted["timestamp"] == "time it was read"
    assert (entry.activity_type, entry.organization_id) == (0, "unknown")


def test_a_bad_optional_field_is_left_out_of_the_typed_view_only() -> None:
    bad = audit_log(audit_metadata="not an object", user_id=12)
    (entry,) = _entries(bad)
    assert isinstance(entry, MalformedAuditLog)
    assert entry.audit_metadata is None
    assert entry.user_id is None
    assert entry.substituted == {}
    assert entry.raw["audit_metadata"] == "not an object"


def test_a_malformed_entry_is_exported_as_sent_with_a_marker() -> None:
    bad = audit_log(timestamp="nope", brand_new={"x": 1})
    (entry,) = _entries(bad)
    exported = to_export_entry(entry)
    assert exported.labels["malformed"] == "true"
    assert exported.insert_id == bad["id"]
    payload = exported.payload
    assert payload["timestamp"] == "nope"  # as Instantly sent it
    assert payload["brand_new"] == {"x": 1}
    assert payload[MALFORMED_MARKER]["substituted"] == {"timestamp": "time of its UUIDv7 id"}
    assert payload["activity"] == "api_key_created"
    assert json.loads(exported.payload_json) == payload


def test_a_good_entry_has_no_marker_and_null_origin_is_unknown() -> None:
    (entry,) = _entries(audit_log(ip_address=None, from_api=None))
    exported = to_export_entry(entry)
    assert type(entry) is AuditLog
    assert "malformed" not in exported.labels
    assert exported.labels["from_api"] == "unknown"
    assert MALFORMED_MARKER not in exported.payload


def test_each_malformed_entry_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    bad = audit_log(timestamp="never")
    with caplog.at_level(logging.WARNING, logger="instantly_guard.instantly"):
        _entries(bad, audit_log())
        _entries(bad)
    lines = [r for r in caplog.records if bad["id"] in r.getMessage()]
    assert len(lines) == 1
    assert "malformed" in lines[0].getMessage()


def test_a_bad_envelope_still_fails_the_page() -> None:
    client, _ = make_client(ScriptedApi(ok({"items": "not a list"})), max_retries=0)
    with pytest.raises(UnexpectedResponseError, match="items"):
        list(client.iter_audit_logs())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.sampled_from([*AuditLog.model_fields, "brand_new"])


@settings(max_examples=300, deadline=None)
@given(
    base=st.booleans(),
    changes=st.dictionaries(_FIELDS, _JSON, max_size=5),
    dropped=st.lists(_FIELDS, max_size=3),
)
def test_any_entry_is_read_and_exported_never_raised(
    base: bool, changes: dict[str, object], dropped: list[str]
) -> None:
    item = {**(audit_log() if base else {}), **changes}
    for name in dropped:
        item.pop(name, None)
    entry = salvage.audit_log(item)
    exported = to_export_entry(entry)
    assert json.loads(exported.payload_json)["activity"]
    if isinstance(entry, MalformedAuditLog):
        assert exported.labels["malformed"] == "true"
        assert entry.raw == item
