"""The audit export (client, read-ahead, exporter, JSONL sink, file checkpoint) against the
sandbox under every plausible Instantly behaviour of `tests/api_variants.py`: every entry is
exported exactly once, a malformed one with its marker, and a second run adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.api_variants import SCOPE_ERROR_VARIANTS, ApiVariant, CountingKey, params

from instantly_guard.audit.checkpoint import LocalCheckpointStore
from instantly_guard.audit.entries import MALFORMED_MARKER
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions, StopReason
from instantly_guard.audit.readahead import ReadAheadSource
from instantly_guard.audit.service import REQUIRED_SCOPE, describe_failure
from instantly_guard.audit.sinks.local import JsonlSink, read_entries
from instantly_guard.errors import ScopeError
from instantly_guard.instantly import InstantlyClient, RateLimiter
from instantly_guard.instantly.salvage import MALFORMED_ID_PREFIX
from instantly_sandbox import Sandbox
from instantly_sandbox.variants import malformation

OPTIONS = ExportOptions(lookback=timedelta(days=5), checkpoint_interval=timedelta(0))


def _export(sb: Sandbox, key: CountingKey, tmp_path: Path) -> tuple[Any, Path]:
    sink_path = tmp_path / "audit.jsonl"
    with InstantlyClient(key, sb.base_url, rate_limiter=RateLimiter(1000, 60000)) as client:
        source = ReadAheadSource(ClientPageSource(client, page_size=100))
        store = LocalCheckpointStore(tmp_path / "checkpoint.json")
        summary = Exporter(source, JsonlSink(sink_path), store, OPTIONS).run()
    return summary, sink_path


def _seed(sb: Sandbox) -> list[str]:
    now = datetime.now(UTC)
    ids = sb.seed_audit_logs(
        300,
        start=now - timedelta(days=3),
        step=timedelta(minutes=14),
        activity_types=(1, 29, 37, 38),
        user_id="019ffad2-5c3e-7d8a-963d-6ecaf1ba1111",
        user_name="Ann Admin",
        ip_address="203.0.113.7",
        from_api=True,
    )
    # A system event: Instantly disabling a failing webhook.
    ids.append(sb.add_audit_log(20, at=now - timedelta(hours=2), from_api=False))
    return ids


@pytest.mark.parametrize("variant", params())
def test_the_export_is_complete(sandbox_factory: Any, tmp_path: Path, variant: ApiVariant) -> None:
    sb = sandbox_factory(seed="empty", **variant.sandbox)
    ids = _seed(sb)
    key = CountingKey(sb.keys["admin"].key)

    summary, sink_path = _export(sb, key, tmp_path)

    assert summary.stopped_reason is StopReason.COMPLETE, summary.error
    entries = list(read_entries(sink_path))
    exported = [e["insertId"] for e in entries]
    assert len(exported) == len(set(exported)) == len(ids)
    malformed = variant.variants.get("audit_fields") == "malformed"
    broken = {i: malformation(i) for i in ids} if malformed else {}
    keeps_id = {i for i in ids if broken.get(i) != "id"}
    assert keeps_id <= set(exported)
    stand_ins = [i for i in exported if i.startswith(MALFORMED_ID_PREFIX)]
    assert len(stand_ins) == len(ids) - len(keeps_id)
    marked = [e for e in entries if e.get("labels", {}).get("malformed") == "true"]
    assert len(marked) == sum(1 for kind in broken.values() if kind)
    assert all(MALFORMED_MARKER in e["jsonPayload"] for e in marked)

    again, _ = _export(sb, key, tmp_path)
    assert again.stopped_reason is StopReason.COMPLETE
    assert again.exported == 0  # stand-in ids and times are stable: nothing twice
    assert key.refreshes == 0


@pytest.mark.parametrize("variant", params(SCOPE_ERROR_VARIANTS))
def test_a_key_without_the_audit_scope_is_diagnosed_as_such(
    sandbox_factory: Any, tmp_path: Path, variant: ApiVariant
) -> None:
    sb = sandbox_factory(seed="empty", **variant.sandbox)
    _seed(sb)
    weak = sb.add_key("weak", ["campaigns:read"])
    key = CountingKey(weak.key)

    summary, sink_path = _export(sb, key, tmp_path)

    assert summary.stopped_reason is StopReason.FAILED
    assert isinstance(summary.error, ScopeError)
    failure = describe_failure(summary.error, "the test")
    assert failure.kind == "missing_scope"
    assert REQUIRED_SCOPE in failure.message
    assert REQUIRED_SCOPE in failure.fields["required"]
    assert key.refreshes == 0
    assert list(read_entries(sink_path)) == []


@pytest.mark.parametrize("form", ["error_500", "error_400"])
def test_a_saved_cursor_that_goes_bad_restarts_the_listing_from_its_dates(
    sandbox_factory: Any, tmp_path: Path, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The checkpoint keeps the cursor of the last page; if Instantly stops knowing it (it
    answered 500 to a cursor it never issued, in a real report), the next run must neither fail
    (every run would, for good) nor stop early: it lists again from the query's dates, with a
    WARNING, and writes each entry once."""
    sb = sandbox_factory(seed="empty", variants={"unknown_cursor": form})
    ids = _seed(sb)
    key = CountingKey(sb.keys["admin"].key)
    first, sink_path = _export(sb, key, tmp_path)
    assert first.stopped_reason is StopReason.COMPLETE
    saved = LocalCheckpointStore(tmp_path / "checkpoint.json").read()
    assert saved is not None
    assert saved[0].seeks, "the run saved no cursor: nothing to go bad"

    sb.forget_cursors()
    now = datetime.now(UTC)
    later = [sb.add_audit_log(1, at=now - timedelta(minutes=m)) for m in (3, 2, 1)]
    with caplog.at_level("WARNING", logger="instantly_guard.audit"):
        second, _ = _export(sb, key, tmp_path)

    assert second.stopped_reason is StopReason.COMPLETE, second.error
    exported = [e["insertId"] for e in read_entries(sink_path)]
    assert sorted(exported) == sorted(ids + later)
    assert any("rejected the saved cursor" in r.getMessage() for r in caplog.records)


def _interrupt_then_resume(
    sb: Any, tmp_path: Path, form: str, caplog: pytest.LogCaptureFixture, owed: str
) -> tuple[Any, Any, list[str], list[str], bool]:
    """Seed the sandbox, stop an export after 100 entries (its pass's cursor saved in the
    checkpoint's `owed` field), make Instantly forget its cursors (unless `lenient`), run again:
    (first summary, second summary, ids seeded, ids written, whether the cursor was rejected)."""
    ids = _seed(sb)
    key = CountingKey(sb.keys["admin"].key)
    sink_path = tmp_path / "audit.jsonl"
    store = LocalCheckpointStore(tmp_path / "checkpoint.json")

    def stop_midway(summary: Any) -> None:
        if summary.exported >= 100:
            raise KeyboardInterrupt

    with InstantlyClient(key, sb.base_url, rate_limiter=RateLimiter(1000, 60000)) as client:
        source = ReadAheadSource(ClientPageSource(client, page_size=50))
        first = Exporter(source, JsonlSink(sink_path), store, OPTIONS, progress=stop_midway).run()
    assert first.stopped_reason is StopReason.INTERRUPTED
    saved = store.read()[0]
    assert saved is not None
    unfinished = getattr(saved, owed)
    assert unfinished is not None
    assert unfinished.cursor is not None, "no cursor saved: nothing to go bad"

    if form != "lenient":
        sb.forget_cursors()
    limiter = RateLimiter(1000, 60000)
    with (
        caplog.at_level("WARNING", logger="instantly_guard.audit"),
        InstantlyClient(key, sb.base_url, rate_limiter=limiter) as client,
    ):
        source = ReadAheadSource(ClientPageSource(client, page_size=50))
        second = Exporter(source, JsonlSink(sink_path), store, OPTIONS).run()

    assert second.stopped_reason is StopReason.COMPLETE, second.error
    exported = [e["insertId"] for e in read_entries(sink_path)]
    rejected = any("rejected the saved cursor" in r.getMessage() for r in caplog.records)
    return first, second, ids, exported, rejected


@pytest.mark.parametrize("form", ["error_500", "error_400", "lenient"])
def test_a_newest_first_pass_whose_cursor_goes_bad_restarts_and_writes_each_entry_once(
    sandbox_factory: Any, tmp_path: Path, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A descending listing's unfinished pass keeps its cursor in the checkpoint; when Instantly
    rejects it, the pass lists again from the top and skips the band it already wrote
    (`lenient`: the cursor stays good, the comparison)."""
    sb = sandbox_factory(seed="empty", listing_order="desc", variants={"unknown_cursor": form})
    _, _, ids, exported, rejected = _interrupt_then_resume(sb, tmp_path, form, caplog, "descent")
    assert sorted(set(exported)) == sorted(ids)  # every entry
    # Twice: only the page the interruption caught (as with a cursor that stays good, the
    # `lenient` run): the restart skips the band the pass wrote.
    assert len(exported) - len(set(exported)) <= 50
    assert rejected is (form != "lenient")


@pytest.mark.parametrize("form", ["error_500", "error_400", "lenient"])
def test_an_unordered_pass_whose_cursor_goes_bad_restarts_and_misses_nothing(
    sandbox_factory: Any, tmp_path: Path, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A random listing's unfinished pass keeps its cursor in the checkpoint; when Instantly
    rejects it, the pass lists again from its start: what it wrote is written again
    (duplicates, collapsed by insertId), nothing is skipped (`lenient`: the cursor stays good,
    the comparison: only what the interruption caught is written twice)."""
    sb = sandbox_factory(seed="empty", listing_order="random", variants={"unknown_cursor": form})
    first, second, ids, exported, rejected = _interrupt_then_resume(
        sb, tmp_path, form, caplog, "sweep"
    )
    assert sorted(set(exported)) == sorted(ids)  # every entry
    rewrites = len(exported) - len(set(exported))
    assert rewrites <= first.exported
    if form == "lenient":  # resumed from the cursor: nothing written twice
        assert rewrites == 0
        assert second.exported == len(ids) - first.exported
    assert rejected is (form != "lenient")


@pytest.mark.parametrize("variant", params())
def test_an_unordered_pass_interrupted_then_resumed_is_exact_under_every_variant(
    sandbox_factory: Any, tmp_path: Path, variant: ApiVariant
) -> None:
    """The safe path's one pass, in random order, under each behaviour of the matrix: stopped
    midway (Ctrl-C), resumed from its cursor by the next run, every entry exactly once (none
    skipped, none written twice), and a third run adds nothing."""
    sb = sandbox_factory(seed="empty", **{**variant.sandbox, "listing_order": "random"})
    ids = _seed(sb)
    key = CountingKey(sb.keys["admin"].key)
    sink_path = tmp_path / "audit.jsonl"
    store = LocalCheckpointStore(tmp_path / "checkpoint.json")

    def stop_midway(summary: Any) -> None:
        if summary.exported >= 100:
            raise KeyboardInterrupt

    def run(progress: Any = None) -> Any:
        with InstantlyClient(key, sb.base_url, rate_limiter=RateLimiter(1000, 60000)) as client:
            source = ReadAheadSource(ClientPageSource(client, page_size=50))
            return Exporter(source, JsonlSink(sink_path), store, OPTIONS, progress=progress).run()

    first = run(stop_midway)
    assert first.stopped_reason is StopReason.INTERRUPTED
    assert first.order == "unordered"
    saved = store.read()[0]
    assert saved is not None
    assert saved.sweep is not None
    assert saved.sweep.cursor is not None
    second = run()

    assert second.stopped_reason is StopReason.COMPLETE, second.error
    exported = [e["insertId"] for e in read_entries(sink_path)]
    assert len(exported) == len(set(exported)) == len(ids)  # malformed ids: stand-ins
    broken = {i: malformation(i) for i in ids} if variant.name == "audit-malformed" else {}
    assert {i for i in ids if broken.get(i) != "id"} <= set(exported)
    assert first.exported + second.exported == len(ids)
    assert run().exported == 0
    assert key.refreshes == 0
