"""The detector's state logic, batch by batch: a windowed incident fires once whatever order its
entries arrive in, across batches and runs (the state saved and read back between batches), with
entries written again; a separate burst still fires; the state stays bounded, yet keeps what an
older entry written later still needs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.audit.audit_support import Clock

from instantly_guard.detections import Config, Finding
from instantly_guard.detections.detector import Detector
from instantly_guard.detections.state import DetectionState, MemoryStateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MFA, LEADS = "audit.mfa-failures", "audit.lead-export-volume"

Entry = tuple[str, dict[str, Any], datetime]


def entry(
    name: str, at: datetime, activity: int = 29, user: str = "u-alice", **extra: Any
) -> Entry:
    payload = {"id": name, "timestamp": at.isoformat(), "activity_type": activity, "user_id": user}
    return name, {**payload, **extra}, at


def burst(prefix: str, start: datetime, n: int = 5, **kwargs: Any) -> list[Entry]:
    """`n` entries an hour apart: one burst (gaps well under the 24 h default)."""
    return [entry(f"{prefix}{i}", start + i * HOUR, **kwargs) for i in range(n)]


def evaluate(batches: Sequence[Sequence[Entry]], *, runs: bool = True) -> list[Finding]:
    """Each batch through one detector; `runs`: the state saved and read back after each (as a
    new export run does), with our clock a minute later."""
    store = MemoryStateStore()
    clock = Clock(T0 + timedelta(days=3))
    detector = Detector(Config(), store, clock=clock)
    state = store.load()
    found: list[Finding] = []
    for batch in batches:
        findings, state = detector.evaluate(list(batch), state)
        found += findings
        store.save(state)
        if runs:
            state = store.load()
        clock.advance(timedelta(minutes=1))
    return found


def rules(found: Sequence[Finding]) -> list[str]:
    return sorted(f.rule_id for f in found)


def split(entries: Sequence[Entry], cuts: Sequence[int]) -> list[list[Entry]]:
    bounds = sorted({c % (len(entries) + 1) for c in cuts} | {0, len(entries)})
    return [list(entries[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


# Two MFA bursts of Alice 25 h apart (separate incidents), two failures of Bob (below the
# threshold), and Carol's lead exports of 400 each, 2 h apart (1,000 crossed at the third).
ALICE_1 = burst("a", T0)
ALICE_2 = burst("b", T0 + 4 * HOUR + timedelta(hours=25))
BOB = burst("x", T0 + 2 * HOUR, 2, user="u-bob")
CAROL = [entry(f"l{i}", T0 + i * 2 * HOUR, 34, "u-carol", affected_count=400) for i in range(4)]
ALL = ALICE_1 + ALICE_2 + BOB + CAROL


def test_a_burst_written_newest_first_one_entry_a_batch_is_one_finding() -> None:
    found = evaluate([[e] for e in reversed(ALICE_1)])
    assert rules(found) == [MFA]
    # The finding is the partial group seen first (the three newest); the rest joins it.
    assert found[0].hit.entry_ids == ("a2", "a3", "a4")


def test_asc_desc_and_any_order_give_the_same_findings() -> None:
    for order in (ALL, list(reversed(ALL)), ALL[1::2] + ALL[::2]):
        for runs in (True, False):
            found = evaluate([[e] for e in order], runs=runs)
            assert rules(found) == [LEADS, MFA, MFA], (order, runs)


@settings(max_examples=150, deadline=None)
@given(
    order=st.permutations(ALL),
    cuts=st.lists(st.integers(min_value=0, max_value=len(ALL)), max_size=12),
    again=st.lists(st.integers(min_value=0, max_value=len(ALL) - 1), max_size=10),
    runs=st.booleans(),
)
def test_each_incident_fires_exactly_once_in_any_order_and_batching(
    order: list[Entry], cuts: list[int], again: list[int], runs: bool
) -> None:
    # `again`: entries written a second time at the end (the overlap window, a rerun).
    batches = [*split(order, cuts), [order[i] for i in again]]
    found = evaluate([b for b in batches if b], runs=runs)
    assert rules(found) == [LEADS, MFA, MFA]
    mfa = sorted(f.hit.first_at for f in found if f.rule_id == MFA)
    assert mfa[0] <= ALICE_1[-1][2] < ALICE_2[0][2] <= mfa[1]


def test_a_second_burst_after_the_gap_fires_even_when_written_first() -> None:
    found = evaluate([ALICE_2, ALICE_1])
    assert [f.hit.entry_ids[0] for f in found] == ["b0", "a0"]


def test_an_older_burst_written_after_a_newer_entry_is_not_lost() -> None:
    # The newest entry (Bob's failure, 5 days later) comes first, then the burst one failure
    # per run: pruned against the newest entry alone, each failure was gone before the next.
    newest = entry("t", T0 + timedelta(days=5), 29, "u-bob")
    found = evaluate([[newest, ALICE_1[0]], [ALICE_1[1]], [ALICE_1[2]]])
    assert rules(found) == [MFA]


def test_the_state_forgets_what_no_entry_can_still_need() -> None:
    store = MemoryStateStore()
    clock = Clock(T0 + timedelta(days=3))
    detector = Detector(Config(), store, clock=clock)
    first = [ALICE_1[0], entry("t", T0 + timedelta(days=5), 29, "u-bob")]
    # TOTP disabled: a one-entry rule's entry is judged once evaluated (its finding fires now).
    found, state = detector.evaluate([*first, entry("d", T0, 26)], DetectionState())
    assert rules(found) == ["audit.totp-disabled"]
    assert set(state.events) == {"a0", "t"}  # a0 was just written: a neighbour may follow
    clock.advance(timedelta(days=3))
    _, state = detector.evaluate([entry("n", T0 + timedelta(days=5, hours=1), 29, "u-bob")], state)
    assert set(state.events) == {"t", "n"}  # a0: old, and written more than 2 days ago


def test_fired_incidents_expire_with_their_keys() -> None:
    store = MemoryStateStore()
    clock = Clock(T0 + timedelta(days=3))
    detector = Detector(Config(), store, clock=clock)
    found, state = detector.evaluate(ALICE_1, DetectionState())
    assert len(found) == 1
    assert len(state.incidents) == 1
    # The first batch after 91 days still holds the burst (it is pruned after evaluating), so
    # the incident is seen once more; 91 days after that it is gone.
    for day in (95, 190):
        clock.advance(timedelta(days=91))
        _, state = detector.evaluate([entry(f"n{day}", T0 + timedelta(days=day), 26)], state)
    assert state.incidents == []
    assert not any(k.startswith(MFA) for k in state.fired)


def test_an_unreadable_incident_is_dropped_not_fatal() -> None:
    good = {
        "rule": MFA,
        "series": "u",
        "first": T0.isoformat(),
        "last": T0.isoformat(),
        "seen": "x",
    }
    data = {"version": 1, "incidents": [good, {"rule": MFA}, {**good, "first": "yesterday"}, 3]}
    assert DetectionState.from_json(data).incidents == [good]


def test_a_burst_longer_than_the_look_back_written_as_it_happens_is_one_finding() -> None:
    # A failure every 20 h for a week, each written in its own run when it happens: the first
    # entries leave the state, so the group seen later starts at a later entry (another key).
    store = MemoryStateStore()
    clock = Clock(T0)
    detector = Detector(Config(), store, clock=clock)
    found: list[Finding] = []
    for i in range(9):
        findings, state = detector.evaluate([entry(f"s{i}", T0 + i * 20 * HOUR)], store.load())
        store.save(state)
        found += findings
        clock.advance(20 * HOUR)
    assert rules(found) == [MFA]
