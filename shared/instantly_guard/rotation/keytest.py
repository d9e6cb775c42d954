"""Testing a freshly created key before anything depends on it (the protocol's Test step)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from instantly_guard.errors import AuthenticationError, InstantlyError, ScopeError
from instantly_guard.instantly.keys import StaticKey
from instantly_guard.rotation.admin import ClientFactory
from instantly_guard.rotation.errors import KeyTestError
from instantly_guard.scopes import (
    FALLBACK_PROBE,
    PROBE_OPERATIONS,
    parse_scopes,
    probe_operation,
)
from instantly_guard.secret import Secret

# Probe reads that are not listings (no `limit` parameter).
_UNPAGED: Final = frozenset(
    {"/workspaces/current", "/workspace-billing/plan-details", "/webhooks/event-types"}
)


@dataclass(frozen=True, slots=True)
class KeyTester:
    """Tests keys with clients from `clients`; a key refused with a plain 401 is tried
    `attempts` times, sleeping `backoff * 2**attempt` seconds in between."""

    clients: ClientFactory
    attempts: int = 3
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def __call__(self, key: Secret, scopes: Sequence[str]) -> None:
        """Prove the new key works with a cheap read its scopes allow (scopes.probe_operation).

        A key whose scopes allow none of the cheap reads (say only `leads:create`) cannot be
        exercised without side effects. It is tested with a cheap read it lacks the scope for,
        expecting Instantly's scope error (401 or 403, in any wording: `responses.py`): it proves
        that Instantly authenticated the key, and when it says `Found: <its scopes>` that it
        knows the key with exactly the declared scopes, while a bad key gets a plain 401. (A 200
        there also proves the key works.)
        Raises KeyTestError when the key does not pass.
        """
        operation = probe_operation(scopes)
        expect_scope_error = operation == FALLBACK_PROBE
        if expect_scope_error:
            operation = PROBE_OPERATIONS[0]
        path = operation.split(" ", 1)[1]
        client = self.clients(StaticKey(key))
        try:
            for attempt in range(self.attempts):
                try:
                    client.probe(path, limit=None if path in _UNPAGED else 1)
                    return
                except ScopeError as exc:
                    if not expect_scope_error:
                        raise KeyTestError(
                            f"new key lacks a declared scope for {operation} ({exc.message})"
                        ) from exc
                    if exc.found and parse_scopes(exc.found) != parse_scopes(scopes):
                        raise KeyTestError(
                            "Instantly reports the new key with other scopes than declared"
                        ) from exc
                    return
                except AuthenticationError as exc:
                    # A key can take a moment to work everywhere after its creation.
                    if attempt + 1 == self.attempts:
                        raise KeyTestError("new key was refused by Instantly (401)") from exc
                    self.sleep(self.backoff * 2**attempt)
                except InstantlyError as exc:
                    raise KeyTestError(f"testing the new key failed: {exc}") from exc
        finally:
            client.close()
