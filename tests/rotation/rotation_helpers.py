"""Shared test machinery for the rotation tests: a world (sandbox + store + rotator), a fake
clock, a store wrapper that fails or "crashes" at a chosen call, and sandbox probes."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from instantly_guard.errors import AuthenticationError, BackendError, InstantlyError
from instantly_guard.instantly import InstantlyClient, StaticKey
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.instantly.ratelimit import RateLimiter
from instantly_guard.rotation.engine import Rotator, set_current
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import Kind, ManagedConfig
from instantly_guard.rotation.run import Trigger
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretMetadata, SecretStore, VersionInfo

ADMIN = "instantly-admin"
MANAGED = "audit-exporter-key"
PREFIX = "instantly-guard"
ADMIN_SCOPES = ("api_keys:create", "api_keys:delete", "api_keys:read")
GRACE = timedelta(hours=1)
LEASE = timedelta(minutes=10)


class Crash(BaseException):
    """Simulates the process dying: not an Exception, so no cleanup code catches it."""


class FakeClock:
    """An aware UTC clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


@dataclass
class _Rule:
    method: str
    at: int  # 1-based call number of `method` that fails
    after: bool  # carry the call out first (the answer is lost)
    exc: Callable[[], BaseException]


class FaultyStore:
    """A SecretStore wrapper failing the n-th call of a method, before or after it runs.

    Counts every call (`calls`), for the benchmark and for "store calls per rotation"."""

    def __init__(self, inner: SecretStore) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()

    @property
    def location(self) -> str | None:
        return getattr(self.inner, "location", None)

    def fail(
        self,
        method: str,
        *,
        at: int = 1,
        after: bool = False,
        exc: Callable[[], BaseException] | None = None,
    ) -> None:
        """Fail call number `at` (counted from now) of `method`."""
        with self._lock:
            base = self.calls.get(method, 0)
            self._rules.append(
                _Rule(
                    method,
                    base + at,
                    after,
                    exc or (lambda: BackendError(f"injected {method} failure")),
                )
            )

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls[method] = number = self.calls.get(method, 0) + 1
            rule = next((r for r in self._rules if r.method == method and r.at == number), None)
            if rule is not None:
                self._rules.remove(rule)
        if rule is not None and not rule.after:
            raise rule.exc()
        result = getattr(self.inner, method)(*args, **kwargs)
        if rule is not None:
            raise rule.exc()
        return result

    def total_calls(self) -> int:
        return sum(self.calls.values())

    def create_secret(self, name: str, **kw: Any) -> SecretMetadata:
        return self._call("create_secret", name, **kw)  # type: ignore[no-any-return]

    def get(self, name: str) -> SecretMetadata:
        return self._call("get", name)  # type: ignore[no-any-return]

    def list_versions(self, name: str) -> list[VersionInfo]:
        return self._call("list_versions", name)  # type: ignore[no-any-return]

    def access(self, name: str, version: str = "latest") -> Secret:
        return self._call("access", name, version)  # type: ignore[no-any-return]

    def add_version(self, name: str, value: Secret) -> str:
        return self._call("add_version", name, value)  # type: ignore[no-any-return]

    def update(self, name: str, **kw: Any) -> SecretMetadata:
        return self._call("update", name, **kw)  # type: ignore[no-any-return]

    def disable_version(self, name: str, version: str) -> None:
        self._call("disable_version", name, version)

    def destroy_version(self, name: str, version: str) -> None:
        self._call("destroy_version", name, version)

    def list_secrets(self, labels: Mapping[str, str] | None = None) -> Iterator[SecretMetadata]:
        return self._call("list_secrets", labels)  # type: ignore[no-any-return]


_TLS = ssl.create_default_context()  # unused on http:// loopback; spares a CA load per client


def make_clients(base_url: str, *, timeout: float = 0.75) -> Callable[[KeyProvider], Any]:
    limiter = RateLimiter(100.0, 6000)

    def build(provider: KeyProvider) -> InstantlyClient:
        return InstantlyClient(
            provider,
            base_url,
            rate_limiter=limiter,
            sleep=lambda _s: None,
            timeout=timeout,
            max_retries=2,
            transport=httpx.HTTPTransport(verify=_TLS),
        )

    return build


@dataclass
class World:
    """A sandbox workspace, a secret store holding the admin key, and a rotator over both."""

    sandbox: Any
    store: FaultyStore
    clock: FakeClock
    clients: Callable[[KeyProvider], Any]
    rotator: Rotator
    events: list[RotateRequest] = field(default_factory=list)

    # -- setup -------------------------------------------------------------------------------

    def declare(
        self,
        name: str = MANAGED,
        *,
        scopes: tuple[str, ...] = ("audit_logs:read",),
        kind: Kind = Kind.API_KEY,
        admin: str | None = ADMIN,
        grace: str = "1h",
        retention: str = "7d",
        webhook_ids: tuple[str, ...] = (),
    ) -> None:
        labels, notes = ManagedConfig.declare(
            kind=kind,
            scopes=scopes,
            admin_secret=admin,
            grace=grace,
            retention=retention,
            key_prefix=PREFIX,
            webhook_ids=webhook_ids,
        )
        self.store.inner.create_secret(name, labels=labels, annotations=notes)

    def bootstrap_admin(self) -> None:
        """The one key a team creates by hand: a least-privilege admin key, stored with set."""
        seeded = self.sandbox.add_key("bootstrap admin", list(ADMIN_SCOPES))
        self.declare(ADMIN, scopes=ADMIN_SCOPES, admin=None)
        set_current(self.store.inner, ADMIN, Secret(seeded.key), key_id=seeded.id)

    # -- events ------------------------------------------------------------------------------

    def rotate_event(self, name: str = MANAGED) -> RotateRequest:
        """A fresh SECRET_ROTATE for `name`, one minute after the previous one."""
        self.clock.advance(timedelta(minutes=1))
        request = RotateRequest(
            secret=name,
            project="test-project",
            event_time=self.clock(),
            message_id=str(len(self.events) + 1),
        )
        self.events.append(request)
        return request

    def manual(self, *, revoke_now: bool = False) -> Trigger:
        return Trigger.manual(self.clock(), revoke_now=revoke_now)

    def fill_state(self, name: str = MANAGED, *, room_left: int) -> None:
        """Queue fake old keys (due in 30 days) on `name` until less than `room_left` bytes of
        its annotations are free: the state of revocations that kept failing."""
        import uuid

        from instantly_guard.rotation.model import Revocation, RotationState

        meta = self.store.inner.get(name)
        state = RotationState.read(meta)
        later = self.clock() + timedelta(days=30)
        revocations = list(state.revocations)
        while state.evolve(revocations=tuple(revocations)).room(meta.annotations) >= room_left:
            revocations.append(
                Revocation(str(900 + len(revocations)), later, key_id=str(uuid.uuid4()))
            )
        while state.evolve(revocations=tuple(revocations)).room(meta.annotations) < 0:
            revocations.pop()
        full = state.evolve(revocations=tuple(revocations))
        self.store.inner.update(
            name,
            aliases=meta.aliases,
            annotations=full.annotations(meta.annotations),
            etag=meta.etag,
        )

    # -- observations --------------------------------------------------------------------------

    def current_key(self, name: str = MANAGED) -> Secret:
        return self.store.inner.access(name, "current")

    def latest_key(self, name: str = MANAGED) -> Secret:
        return self.store.inner.access(name, "latest")

    def key_works(self, key: Secret) -> bool:
        with self.clients(StaticKey(key)) as client:
            try:
                client.probe("/audit-logs", limit=1)
            except AuthenticationError:
                return False
            except InstantlyError:
                return True  # authenticated (scope or server trouble is not this question)
        return True

    def managed_keys(self, name: str = MANAGED) -> list[Any]:
        """Keys in the sandbox that rotation minted for `name`."""
        prefix = f"{PREFIX}/{name}/"
        return [k for k in self.sandbox.state.api_keys.values() if k.name.startswith(prefix)]

    def key_record(self, key: Secret) -> Any:
        for record in self.sandbox.state.api_keys.values():
            if record.key == key.reveal():
                return record
        return None

    def annotations(self, name: str = MANAGED) -> Mapping[str, str]:
        return self.store.inner.get(name).annotations

    def aliases(self, name: str = MANAGED) -> Mapping[str, str]:
        return self.store.inner.get(name).aliases

    def assert_consistent(self, name: str = MANAGED) -> None:
        """No orphaned managed key: every key minted for `name` is the current one or an old
        one still queued for revocation; `current` and `latest` both work."""
        from instantly_guard.rotation.model import RotationState

        meta = self.store.inner.get(name)
        state = RotationState.read(meta)
        known = {state.current_key_id, state.pending_key_id} | {r.key_id for r in state.revocations}
        orphans = [k.name for k in self.managed_keys(name) if k.id not in known]
        assert not orphans, f"orphaned managed keys: {orphans}"
        if state.current:
            assert self.key_works(self.current_key(name)), "current does not work"
            assert self.key_works(self.latest_key(name)), "latest does not work"
