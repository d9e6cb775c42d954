"""The recent-id memory: LRU bound, time window, and waiting on a publish in flight."""

from __future__ import annotations

import threading
import time

from instantly_guard.webhook.dedupe import Claim, RecentIds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_accepted_id_is_a_duplicate_within_the_window_only():
    clock = Clock()
    recent = RecentIds(window=60, monotonic=clock)
    assert recent.claim("a", wait=1) is Claim.OWNED
    recent.finish("a", accepted=True)

    assert recent.claim("a", wait=1) is Claim.DUPLICATE
    clock.now += 61
    assert recent.claim("a", wait=1) is Claim.OWNED


def test_failed_publish_is_not_remembered():
    recent = RecentIds(window=60)
    recent.claim("a", wait=1)
    recent.finish("a", accepted=False)

    assert recent.claim("a", wait=1) is Claim.OWNED


def test_least_recently_seen_id_is_evicted_first():
    recent = RecentIds(window=60, max_entries=2)
    for event_id in ("a", "b"):
        recent.claim(event_id, wait=1)
        recent.finish(event_id, accepted=True)
    assert recent.claim("a", wait=1) is Claim.DUPLICATE  # touches "a"
    recent.claim("c", wait=1)
    recent.finish("c", accepted=True)

    assert len(recent) == 2
    assert recent.claim("a", wait=1) is Claim.DUPLICATE
    assert recent.claim("b", wait=1) is Claim.OWNED


def test_a_second_delivery_waits_for_the_publish_in_flight():
    recent = RecentIds(window=60)
    assert recent.claim("a", wait=1) is Claim.OWNED
    results = []
    waiter = threading.Thread(target=lambda: results.append(recent.claim("a", wait=5)))
    waiter.start()
    time.sleep(0.05)
    assert results == []  # still waiting
    recent.finish("a", accepted=True)
    waiter.join(2)

    assert results == [Claim.DUPLICATE]


def test_a_waiter_takes_over_when_the_publish_in_flight_fails():
    recent = RecentIds(window=60)
    recent.claim("a", wait=1)
    results = []
    waiter = threading.Thread(target=lambda: results.append(recent.claim("a", wait=5)))
    waiter.start()
    time.sleep(0.05)
    recent.finish("a", accepted=False)
    waiter.join(2)

    assert results == [Claim.OWNED]


def test_waiting_is_bounded():
    recent = RecentIds(window=60)
    recent.claim("a", wait=1)

    started = time.monotonic()
    assert recent.claim("a", wait=0.1) is Claim.UNCOORDINATED
    assert time.monotonic() - started < 1


def test_disabled_window_never_answers_duplicate():
    recent = RecentIds(window=0)
    recent.remember("a")

    assert recent.claim("a", wait=1) is Claim.UNCOORDINATED
