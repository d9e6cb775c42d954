"""A windowed incident fires once whatever order the export writes its entries in.

Against the sandbox over HTTP, in each listing order it models (asc, desc, random): 3,000
entries with a burst of five failed MFA challenges one hour apart (so the burst's entries land
in different pages, hence different batches), exported through `DetectingSink` in one run, in
runs cut short by the time budget and resumed, and again after a lost checkpoint (every entry
written a second time). Before the fired incidents kept their spans, desc and random gave two
findings for the burst (a partial group first, then the full one under another first entry).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.audit.audit_support import Clock, MemorySink

from instantly_guard.audit.checkpoint import LocalCheckpointStore
from instantly_guard.audit.detecting import DetectingSink
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions, StopReason
from instantly_guard.detections import Config
from instantly_guard.detections.detector import Detector
from instantly_guard.detections.state import LocalStateStore
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey

MFA = "audit.mfa-failures"
# The sandbox's random order is a keyed permutation: three keys, three different interleavings.
ORDERS = ["asc", "desc", "random:1", "random:2", "random:3"]
ALICE = {"user_id": "u-alice", "user_name": "Alice", "from_api": False}


class Rig:
    """A sandbox with 3,000 entries, an export through `DetectingSink` with file state."""

    def __init__(self, sb: Any, tmp_path: Path) -> None:
        self.sb = sb
        self.client = InstantlyClient(
            StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60000)
        )
        self.findings = MemorySink()
        self.detector = Detector(Config(), LocalStateStore(tmp_path / "detections.json"))
        self.sink = DetectingSink(MemorySink(), self.detector, self.findings)
        self.checkpoint = tmp_path / "checkpoint.json"

    def run(self, options: ExportOptions, clock: Any = None) -> StopReason:
        exporter = Exporter(
            ClientPageSource(self.client, page_size=100),
            self.sink,
            LocalCheckpointStore(self.checkpoint),
            options,
            **({"clock": clock} if clock else {}),
        )
        summary = exporter.run()
        self.sink.flush()  # as the service does after each run
        return summary.stopped_reason

    def found(self, rule: str = MFA) -> list[dict[str, Any]]:
        return [
            json.loads(e.payload_json) for e in self.findings.entries if e.labels["rule"] == rule
        ]


@pytest.fixture
def rig(sandbox_factory: Any, tmp_path: Path) -> Iterator[Any]:
    made: list[Rig] = []

    def make(order: str, bursts: tuple[timedelta, ...] = (timedelta(hours=-20),)) -> Rig:
        listing, _, key = order.partition(":")
        sb = sandbox_factory(
            seed="empty",
            listing_order=listing,
            shuffle_key=key.encode() or None,
            record_responses=False,
        )
        now = datetime.now(UTC)
        sb.seed_audit_logs(3000, start=now - timedelta(hours=20), step=timedelta(seconds=24))
        for start in bursts:  # five failures an hour apart: one burst (gaps under 24 h)
            for i in range(5):
                sb.add_audit_log(29, at=now + start + timedelta(hours=i), **ALICE)
        made.append(Rig(sb, tmp_path))
        return made[-1]

    yield make
    for r in made:
        r.client.close()


OPTIONS = ExportOptions(lookback=timedelta(days=3), checkpoint_interval=timedelta(0))


@pytest.mark.parametrize("order", ORDERS)
def test_a_burst_written_in_any_order_is_one_finding(rig: Any, order: str) -> None:
    r = rig(order)
    assert r.run(OPTIONS) is StopReason.COMPLETE
    found = r.found()
    assert len(found) == 1, found

    # Every entry written again (a lost checkpoint): nothing new.
    r.checkpoint.unlink()
    assert r.run(OPTIONS) is StopReason.COMPLETE
    assert len(r.found()) == 1


@pytest.mark.parametrize("order", ORDERS)
def test_a_burst_split_across_runs_in_any_order_is_one_finding(rig: Any, order: str) -> None:
    r = rig(order)
    # A clock that moves 2 s on every read: each run stops on its 60 s budget after a few
    # pages, and the next run resumes where it stopped.
    options = ExportOptions(
        lookback=timedelta(days=3),
        checkpoint_interval=timedelta(0),
        time_budget=timedelta(seconds=60),
    )
    clock = Clock(datetime.now(UTC), tick=timedelta(seconds=2))
    reasons = []
    for _ in range(40):
        reasons.append(r.run(options, clock))
        if reasons[-1] is StopReason.COMPLETE:
            break
        clock.advance(timedelta(minutes=5))
    assert reasons[0] is StopReason.TIME_BUDGET, reasons
    assert reasons[-1] is StopReason.COMPLETE, reasons
    assert len(r.found()) == 1, r.found()


@pytest.mark.parametrize("order", ORDERS)
def test_a_second_burst_after_the_gap_is_its_own_finding(rig: Any, order: str) -> None:
    # The first burst ends 40 h ago, the second starts 14 h ago: 26 h apart, over the 24 h gap.
    r = rig(order, bursts=(timedelta(hours=-44), timedelta(hours=-14)))
    assert r.run(OPTIONS) is StopReason.COMPLETE
    found = r.found()
    assert len(found) == 2, found
    assert {f["subject"] for f in found} == {"user/u-alice"}
    firsts = sorted(f["first_event_at"] for f in found)
    assert firsts[1] > firsts[0]
