"""Key providers: where the client gets the API key for each request.

The client calls its provider before every attempt, so a provider decides how fresh the key is.
On a bad-key 401 the client calls `provider(refresh=True)` once: a provider backed by a secret
store re-reads it there, which is how a long-lived process picks up a rotated key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from instantly_guard.secret import Secret

_log = logging.getLogger("instantly_guard.instantly")


class KeyProvider(Protocol):
    """A callable giving the current API key. `refresh=True` asks it to bypass any cache."""

    def __call__(self, *, refresh: bool = False) -> Secret: ...


class StaticKey:
    """A fixed key (the CLI's `INSTANTLY_API_KEY`, a freshly created key under test).

    A refresh returns the same key, so the client does not retry a 401 with it.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: Secret | str) -> None:
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)

    def __call__(self, *, refresh: bool = False) -> Secret:
        return self._secret

    def __repr__(self) -> str:
        return "StaticKey(Secret('***'))"


class CachedKey:
    """Caches what `fetch` returns for `ttl` seconds; `refresh=True` fetches again.

    Thread-safe; one fetch at a time. Two rules keep a secret store from being hammered without
    ever handing back a key older than the caller's reason to refresh:

    - a refresh is satisfied by a fetch that began after the refresh was asked for: threads that
      saw the same 401 share one re-read (at most two for any herd) instead of one each;
    - when the TTL has run out and the fetch fails, the cached key is served (and the failure
      logged) if `serve_stale_on_error`: during a secret-store outage the last key usually still
      works. A refresh still raises, because then the cached key is known to be bad.
    """

    def __init__(
        self,
        fetch: Callable[[], Secret],
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        serve_stale_on_error: bool = True,
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        self._fetch = fetch
        self._ttl = ttl
        self._serve_stale = serve_stale_on_error
        self._clock = clock
        self._lock = threading.Lock()
        self._value: Secret | None = None
        self._fetched_at = 0.0
        self._fetches_begun = 0
        self._value_from = 0  # which fetch (by number) produced _value

    def __call__(self, *, refresh: bool = False) -> Secret:
        # Read before waiting for the lock: any fetch numbered above this began after the caller
        # decided to refresh, so its result is at least as new as what made it refresh. (A plain
        # int read needs no lock.)
        asked_after = self._fetches_begun
        with self._lock:
            now = self._clock()
            if self._value is not None:
                if refresh and self._value_from > asked_after:
                    return self._value
                if not refresh and now - self._fetched_at < self._ttl:
                    return self._value
            self._fetches_begun += 1
            number = self._fetches_begun
            try:
                value = self._fetch()
            except Exception as exc:
                if refresh or self._value is None or not self._serve_stale:
                    raise
                # Only the exception's type: its message is not ours and could quote anything.
                _log.warning("key fetch failed (%s); serving the cached key", type(exc).__name__)
                return self._value
            self._value, self._value_from, self._fetched_at = value, number, now
            return value

    def invalidate(self) -> None:
        """Forget the cached key: the next call fetches."""
        with self._lock:
            self._value = None

    def __repr__(self) -> str:
        return f"CachedKey(ttl={self._ttl})"
