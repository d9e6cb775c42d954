"""Key providers: StaticKey and the TTL cache the secret-store provider builds on."""

from __future__ import annotations

import threading
import time

import pytest
from tests.unit.instantly_fakes import FakeClock

from instantly_guard.instantly import CachedKey, KeyProvider, StaticKey
from instantly_guard.secret import Secret


class Store:
    """A secret store stand-in: hands out its current value and counts reads."""

    def __init__(self) -> None:
        self.value = "store-value-0001"
        self.reads = 0
        self.down = False

    def fetch(self) -> Secret:
        self.reads += 1
        if self.down:
            raise ConnectionError("secret store unavailable")
        return Secret(self.value)


def test_static_key_returns_its_key_and_never_shows_it() -> None:
    provider: KeyProvider = StaticKey("static-key-value-99")
    assert provider().reveal() == "static-key-value-99"
    assert provider(refresh=True) == provider()
    assert "static-key-value-99" not in repr(provider)
    assert StaticKey(Secret("wrapped-key-value-1"))().reveal() == "wrapped-key-value-1"


def test_cached_key_reads_once_per_ttl() -> None:
    store, clock = Store(), FakeClock()
    provider = CachedKey(store.fetch, ttl=30, clock=clock)
    assert provider().reveal() == "store-value-0001"
    store.value = "store-value-0002"
    clock.now += 29
    assert provider().reveal() == "store-value-0001"
    clock.now += 2
    assert provider().reveal() == "store-value-0002"
    assert store.reads == 2


def test_refresh_reads_again_before_the_ttl() -> None:
    store, clock = Store(), FakeClock()
    provider = CachedKey(store.fetch, ttl=300, clock=clock)
    provider()
    store.value = "rotated-value-0002"
    clock.now += 5
    assert provider(refresh=True).reveal() == "rotated-value-0002"
    assert store.reads == 2


def test_a_refresh_right_after_a_read_still_reads_again() -> None:
    # The earlier read may predate the rotation that made the caller's key fail.
    store, clock = Store(), FakeClock()
    provider = CachedKey(store.fetch, ttl=300, clock=clock)
    provider()
    store.value = "rotated-value-0002"
    assert provider(refresh=True).reveal() == "rotated-value-0002"
    assert provider(refresh=True).reveal() == "rotated-value-0002"
    assert store.reads == 3


def test_a_herd_of_refreshes_shares_at_most_two_reads() -> None:
    # Many threads that saw the same 401 must not each re-read the secret store.
    store = Store()

    def slow_fetch() -> Secret:
        time.sleep(0.05)
        return store.fetch()

    provider = CachedKey(slow_fetch, ttl=300)
    provider()
    store.value = "rotated-value-0002"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(provider(refresh=True).reveal()))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["rotated-value-0002"] * 8
    assert 2 <= store.reads <= 3


def test_an_expired_key_is_served_while_the_store_is_down() -> None:
    store, clock = Store(), FakeClock()
    provider = CachedKey(store.fetch, ttl=30, clock=clock)
    provider()
    store.down = True
    clock.now += 60
    assert provider().reveal() == "store-value-0001"


def test_a_refresh_while_the_store_is_down_raises() -> None:
    # After a 401 the cached key is known bad: serving it again would only hide the outage.
    store, clock = Store(), FakeClock()
    provider = CachedKey(store.fetch, ttl=30, clock=clock)
    provider()
    store.down = True
    clock.now += 5
    with pytest.raises(ConnectionError):
        provider(refresh=True)


def test_a_first_read_failure_raises() -> None:
    store = Store()
    store.down = True
    with pytest.raises(ConnectionError):
        CachedKey(store.fetch, clock=FakeClock())()


def test_stale_serving_can_be_turned_off() -> None:
    store, clock = Store(), FakeClock()
    provider = CachedKey(store.fetch, ttl=30, serve_stale_on_error=False, clock=clock)
    provider()
    store.down = True
    clock.now += 60
    with pytest.raises(ConnectionError):
        provider()


def test_invalidate_forces_a_read() -> None:
    store = Store()
    provider = CachedKey(store.fetch, ttl=300, clock=FakeClock())
    provider()
    provider.invalidate()
    provider()
    assert store.reads == 2


def test_concurrent_first_calls_read_once() -> None:
    store = Store()

    def slow_fetch() -> Secret:
        time.sleep(0.05)
        return store.fetch()

    provider = CachedKey(slow_fetch, ttl=300)
    results: list[Secret] = []
    threads = [threading.Thread(target=lambda: results.append(provider())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.reads == 1
    assert len(results) == 8


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl must be >= 0"):
        CachedKey(Store().fetch, ttl=-1)
