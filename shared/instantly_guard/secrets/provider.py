"""Key providers backed by the secret store: how consumers follow a rotation without a restart.

A consumer reads alias `current`, never `latest`: `latest` becomes whatever was added last, and a
future writer (a person running `secrets set`, a tool we do not control) could add a version that
was never tested. `current` moves only in the rotation's guarded Finish step, to a version whose
key was tested first, and the key it replaces stays valid for the grace period. With a short TTL
and the client's refresh on a bad-key 401, a long-lived process switches keys within seconds and
never holds a revoked key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from instantly_guard.instantly.keys import CachedKey
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretStore

CURRENT = "current"
DEFAULT_TTL_S = 60.0


def secret_key_provider(
    store: SecretStore,
    name: str,
    *,
    alias: str = CURRENT,
    ttl: float = DEFAULT_TTL_S,
    clock: Callable[[], float] = time.monotonic,
) -> CachedKey:
    """A `KeyProvider` returning the key that `name`'s `alias` names, cached for `ttl` seconds.

    `provider(refresh=True)` (what the client calls on a bad-key 401) re-reads the store, so a key
    revoked at the end of a rotation's grace period is replaced on the first call that fails.
    """

    def fetch() -> Secret:
        return store.access(name, alias)

    return CachedKey(fetch, ttl=ttl, clock=clock)
