"""The client-side rate limiter: both budgets, bursts, pauses, threads, the process default."""

from __future__ import annotations

import threading

import httpx
import pytest
from tests.unit.instantly_fakes import BASE_URL, KEY, FakeClock, ok, workspace

from instantly_guard.instantly import (
    InstantlyClient,
    RateLimiter,
    StaticKey,
    configure_default,
    default_limiter,
)
from instantly_guard.settings import CommonSettings


def _limiter(per_second: float, per_minute: float) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(per_second, per_minute, clock=clock, sleep=clock.sleep), clock


def test_a_burst_of_per_second_passes_then_requests_are_spaced() -> None:
    limiter, clock = _limiter(per_second=4, per_minute=6000)
    waits = [limiter.acquire() for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.0, 0.25, 0.25]
    assert clock.now == pytest.approx(1000.5)


def test_the_per_minute_budget_binds_a_sustained_rate() -> None:
    limiter, clock = _limiter(per_second=100, per_minute=120)  # 2/s sustained
    start = clock.now
    for _ in range(130):
        limiter.acquire()
    # A minute's 120 go out at up to 100/s; the 10 beyond them at 2/s, though 100/s would allow.
    assert clock.now - start == pytest.approx(5.0)


def test_defaults_stay_well_under_instantlys_limits() -> None:
    limiter = RateLimiter()
    assert (limiter.per_second, limiter.per_minute) == (20.0, 1200.0)
    settings = CommonSettings.from_env({})
    assert (settings.rate_per_second, settings.rate_per_minute) == (20.0, 1200)


def test_pause_holds_every_caller_back() -> None:
    limiter, _ = _limiter(per_second=100, per_minute=6000)
    limiter.pause(3.0)
    assert limiter.acquire() == pytest.approx(3.0)
    assert limiter.acquire() == 0.0


def test_concurrent_callers_each_get_their_own_slot() -> None:
    # Sleeps only record, so every thread computes its wait on the same instant: with no lost
    # update, the waits handed out are exactly 0 (the burst) and then k/rate for k = 1, 2, ...
    waits: list[float] = []
    lock = threading.Lock()
    limiter = RateLimiter(10, 6000, clock=lambda: 0.0, sleep=lambda s: None)

    def worker() -> None:
        for _ in range(25):
            wait = limiter.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [0.0] * 10 + [k / 10 for k in range(1, 191)]
    assert sorted(waits) == pytest.approx(expected)


def test_configure_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0, 100)
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(10, -1)


def test_every_client_shares_the_process_default_limiter() -> None:
    before = (default_limiter().per_second, default_limiter().per_minute)
    try:
        shared = configure_default(7, 420)
        assert shared is default_limiter()
        requests: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return ok(workspace())

        client = InstantlyClient(StaticKey(KEY), BASE_URL, transport=httpx.MockTransport(handler))
        assert client.rate_limiter is shared
        assert (shared.per_second, shared.per_minute) == (7, 420)
    finally:
        configure_default(*before)


def test_repr_states_the_budgets() -> None:
    assert repr(RateLimiter(20, 1200)) == "RateLimiter(per_second=20, per_minute=1200)"
