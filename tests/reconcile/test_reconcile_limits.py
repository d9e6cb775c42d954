"""No single record can stop reconciliation (issue 18): the receiver's limits apply, a record
over them is settled as refused and logged at ERROR, and every valid event still gets through."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instantly_guard.reconcile.service import build_service
from instantly_guard.webhook.payload import PayloadError, canonical_json, event_id, parse_event

from .reconcile_support import (
    ReceiverServer,
    add_webhook,
    deliver,
    inject_failures,
    reconcile_env,
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


def _ids(payloads: list[dict]) -> list[str]:
    return sorted(event_id(canonical_json(p)) for p in payloads)


def test_a_body_the_receiver_refused_with_413_is_not_republished(
    sandbox_factory, receiver: ReceiverServer, caplog
) -> None:
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    big = sb.build_event_payload("reply_received", notes="x" * 2_000_000)
    assert sb.deliver_webhook_event(hook, big) == 413  # the receiver's limit: 256 KiB
    receiver.stop()
    later = deliver(sb, hook, 3, lead="later")
    receiver.start()

    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        with caplog.at_level(logging.ERROR, logger="instantly_guard.reconcile"):
            report = service.run("job@1")
            again = service.run("job@2")
    finally:
        service.close()

    assert (report.outcome, report.refused, report.republished) == ("complete", 1, 3)
    assert sorted(receiver.outbox_ids()) == _ids(later)
    assert any(getattr(r, "fields", {}).get("action") == "refused" for r in caplog.records)
    assert (again.refused, again.republished, again.checked) == (0, 0, 0)  # settled for good


@pytest.mark.parametrize("size", [2_000_000, 12_000_000], ids=["2MB", "12MB"])
def test_an_oversized_missed_payload_is_refused_and_later_events_still_flow(
    sandbox_factory, receiver: ReceiverServer, size: int
) -> None:
    """A payload Instantly could not deliver at all (receiver down) that is over the receiver's
    body limit: the receiver would have refused it, so it is refused here too, once."""
    sb = sandbox_factory(seed="empty")
    hook = add_webhook(sb, receiver.url)
    receiver.stop()
    before = deliver(sb, hook, 2, lead="before")
    huge = sb.build_event_payload("reply_received", notes="y" * size)
    inject_failures(sb, hook, [huge])
    after = deliver(sb, hook, 2, lead="after")
    receiver.start()

    service = build_service(reconcile_env(sb, receiver.state_dir, receiver.url))
    try:
        report = service.run("job@1")
        again = service.run("job@2")
    finally:
        service.close()

    assert (report.outcome, report.refused, report.republished) == ("complete", 1, 4)
    assert sorted(receiver.outbox_ids()) == _ids(before + after)
    assert (again.outcome, again.refused, again.republished) == ("complete", 0, 0)


# -- property: arbitrary JSON through the reconcile path ----------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_event_type = st.sampled_from(["reply_received", "lead_interested", "Custom Label"]) | _json
_payload = st.fixed_dictionaries(
    {},
    optional={
        "event_type": _event_type,
        "timestamp": st.sampled_from(["2026-08-13T11:11:58.208Z"]) | _json,
        "workspace": st.text(max_size=40) | _json,
        "campaign_id": st.text(max_size=40) | _json,
        "lead_email": st.emails() | _json,
        "extra": _json,
    },
)


def _valid(payload: dict) -> bool:
    try:
        parse_event(json.dumps(payload).encode())
    except PayloadError:
        return False
    return True


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payloads=st.lists(_payload, min_size=1, max_size=6))
def test_arbitrary_json_never_stops_a_run_and_every_valid_event_gets_through(
    sandbox_factory, payloads: list[dict]
) -> None:
    sb = sandbox_factory(seed="empty")
    state_dir = Path(tempfile.mkdtemp(prefix="reconcile-prop-"))
    try:
        hook = add_webhook(sb, "https://hooks.example/instantly")
        inject_failures(sb, hook, payloads)
        service = build_service(
            reconcile_env(sb, state_dir, "https://hooks.example/instantly"),
            client_options={"sleep": lambda _s: None},
        )
        try:
            report = service.run("job@1")
            again = service.run("job@2")
        finally:
            service.close()
        from instantly_guard.publish.local import read_outbox

        published = sorted(m.attributes["event_id"] for m in read_outbox(state_dir))
        valid = [p for p in payloads if _valid(p)]
        assert report.outcome == "complete", report.to_json()
        assert published == sorted(set(_ids(valid)))  # nothing valid lost, nothing else out
        assert report.refused + report.foreign == len(payloads) - len(valid)
        assert (again.outcome, again.checked) == ("complete", 0)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
