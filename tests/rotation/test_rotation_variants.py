"""Key rotation (the real engine, a local secret store, the sandbox over HTTP) under every
plausible Instantly behaviour of `tests/api_variants.py` (the `rotation_sandbox` fixture takes
the variant's sandbox options, so the leak guard of conftest.py covers these keys too)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from rotation_helpers import ADMIN, GRACE, MANAGED, FakeClock, FaultyStore, World, make_clients
from tests.api_variants import SCOPE_ERROR_VARIANTS, params

from instantly_guard.errors import ScopeError
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.rotation.engine import Rotator, set_current
from instantly_guard.rotation.results import Outcome
from instantly_guard.secret import Secret
from instantly_guard.secrets.local import LocalSecretStore


class Refreshes:
    """Wraps the client factory: counts the key refreshes any client asks its provider for."""

    def __init__(self, clients: Callable[[KeyProvider], Any]) -> None:
        self._clients = clients
        self.count = 0

    def __call__(self, provider: KeyProvider) -> Any:
        def counted(*, refresh: bool = False) -> Secret:
            self.count += refresh
            return provider(refresh=refresh)

        return self._clients(counted)


def _world(sb: Any, tmp_path: Any) -> tuple[World, Refreshes]:
    clock = FakeClock()
    store = FaultyStore(LocalSecretStore(tmp_path / "secrets"))
    clients = Refreshes(make_clients(sb.base_url))
    rotator = Rotator(store, clients, clock=clock, sleep=lambda _s: None)
    return World(sb, store, clock, clients, rotator), clients


@pytest.mark.parametrize("rotation_sandbox", params(), indirect=True)
def test_rotation_succeeds(rotation_sandbox: Any, tmp_path: Any) -> None:
    world, refreshes = _world(rotation_sandbox, tmp_path)
    world.bootstrap_admin()
    world.declare()
    world.declare("no-cheap-read", scopes=("leads:create",))  # tested by its scope error

    assert world.rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED
    old = world.current_key()
    assert world.rotator.handle(world.rotate_event()).outcome is Outcome.ROTATED
    assert world.rotator.handle(world.rotate_event("no-cheap-read")).outcome is Outcome.ROTATED
    assert world.rotator.handle(world.rotate_event(ADMIN)).outcome is Outcome.ROTATED

    world.clock.advance(GRACE + timedelta(seconds=1))
    swept = world.rotator.sweep()
    assert swept[MANAGED].revoked_versions == ["1"]  # type: ignore[union-attr]
    assert refreshes.count == 0  # the rotations never needed a refreshed key
    assert not world.key_works(old)
    for name in (MANAGED, "no-cheap-read", ADMIN):
        world.assert_consistent(name)


@pytest.mark.parametrize("rotation_sandbox", params(SCOPE_ERROR_VARIANTS), indirect=True)
def test_an_admin_key_without_a_scope_fails_with_a_scope_diagnosis(
    rotation_sandbox: Any, tmp_path: Any
) -> None:
    world, refreshes = _world(rotation_sandbox, tmp_path)
    # The admin key can create and delete, but not list keys (which rotation does first).
    seeded = world.sandbox.add_key("bootstrap admin", ["api_keys:create", "api_keys:delete"])
    world.declare(ADMIN, scopes=("api_keys:create", "api_keys:delete"), admin=None)
    set_current(world.store.inner, ADMIN, Secret(seeded.key), key_id=seeded.id)
    world.declare()
    keys_before = set(world.sandbox.state.api_keys)

    with pytest.raises(ScopeError) as info:
        world.rotator.handle(world.rotate_event())

    assert "api_keys:read" in info.value.required
    assert "api_keys:read" in str(info.value)
    assert set(world.sandbox.state.api_keys) == keys_before  # none created, none deleted
    assert world.sandbox.calls["POST /api-keys"] == 0
    assert world.sandbox.calls["DELETE /api-keys/{id}"] == 0
    assert refreshes.count == 0
