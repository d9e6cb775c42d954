"""Building the rotation's collaborators from configuration, once per instance (cold start).

Environment (besides `CommonSettings`: GUARD_BACKEND, GUARD_STATE_DIR, INSTANTLY_API_BASE,
GOOGLE_CLOUD_PROJECT, LOG_LEVEL, INSTANTLY_RATE_PER_SECOND/_PER_MINUTE):

    ROTATION_LEASE          how long one delivery may work on a secret before another may take
                            over (default 10m; keep it above the function timeout, 540 s)
    ROTATION_TEST_ATTEMPTS  tries of the new key before the rotation fails (default 3)
    ROTATION_PROJECT_NUMBER the project's number: Secret Manager may name the project by number
                            in `secretId`; an event naming neither it nor GOOGLE_CLOUD_PROJECT is
                            refused (Terraform sets both)
    ROTATION_EVENT_MAX_SKEW how far an event's timestamp may be from its publishTime and from now
                            (default 10m)
    ROTATION_EVENT_MAX_AGE  how old an event may be when delivered (default 7d, Pub/Sub's retention)
    ROTATION_MIN_INTERVAL   when set, the least time between two event-driven rotations of any
                            secret; unset, half the secret's rotation period, or 1h when the
                            store knows none

With GUARD_BACKEND=gcp, GOOGLE_CLOUD_PROJECT is required; with `local`, secrets live under
GUARD_STATE_DIR/secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.rotation.admin import ClientFactory, InstantlyApi
from instantly_guard.rotation.admission import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_SKEW,
    DEFAULT_MIN_INTERVAL,
    EventPolicy,
)
from instantly_guard.rotation.engine import Rotator
from instantly_guard.rotation.function import RotationFunction
from instantly_guard.rotation.lease import DEFAULT_LEASE
from instantly_guard.secrets.base import SecretStore
from instantly_guard.secrets.factory import open_store
from instantly_guard.settings import Backend, CommonSettings, Reader

MAX_FUNCTION_TIMEOUT = timedelta(seconds=540)  # an event-driven function's limit (Terraform's)


@dataclass(frozen=True, slots=True)
class RotationSettings:
    common: CommonSettings
    lease: timedelta
    test_attempts: int
    events: EventPolicy
    min_interval: timedelta | None  # None: derived per secret (admission.min_interval)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RotationSettings:
        reader = Reader(env)
        common = CommonSettings.read(reader)
        if common.backend is Backend.GCP and not common.project:
            reader.problems.append("GOOGLE_CLOUD_PROJECT is required with GUARD_BACKEND=gcp")
        settings = cls(
            common=common,
            lease=reader.duration("ROTATION_LEASE", DEFAULT_LEASE),
            test_attempts=reader.integer("ROTATION_TEST_ATTEMPTS", 3, minimum=1, maximum=10),
            events=EventPolicy.for_project(
                common.project,
                _project_number(reader),
                max_skew=reader.duration("ROTATION_EVENT_MAX_SKEW", DEFAULT_MAX_SKEW),
                max_age=reader.duration("ROTATION_EVENT_MAX_AGE", DEFAULT_MAX_AGE),
            ),
            min_interval=(
                reader.duration("ROTATION_MIN_INTERVAL", DEFAULT_MIN_INTERVAL)
                if env.get("ROTATION_MIN_INTERVAL", "").strip()
                else None
            ),
        )
        if settings.lease <= MAX_FUNCTION_TIMEOUT:
            # A shorter lease lets a redelivery take over a rotation that is still running: it
            # would delete the key the first delivery is about to store.
            reader.problems.append(
                f"ROTATION_LEASE must be longer than the function timeout "
                f"({int(MAX_FUNCTION_TIMEOUT.total_seconds())} s)"
            )
        reader.finish()
        return settings


def _project_number(reader: Reader) -> str | None:
    number = reader.text("ROTATION_PROJECT_NUMBER")
    if number is not None and not number.isdigit():
        reader.problems.append("ROTATION_PROJECT_NUMBER must be the project's number (digits)")
    return number


def client_factory(common: CommonSettings) -> ClientFactory:
    """Instantly clients for key providers, bound to the configured base URL and rate limits.

    A rotation builds a few short-lived clients (admin key, key under test); they share one TLS
    context, because loading the CA bundle costs tens of milliseconds per client.
    """
    import ssl

    import certifi
    import httpx

    from instantly_guard.instantly.client import InstantlyClient
    from instantly_guard.instantly.ratelimit import configure_default

    limiter = configure_default(common.rate_per_second, common.rate_per_minute)
    tls = ssl.create_default_context(cafile=certifi.where())

    def build(provider: KeyProvider) -> InstantlyApi:
        return InstantlyClient(
            provider,
            common.api_base,
            rate_limiter=limiter,
            transport=httpx.HTTPTransport(verify=tls),
        )

    return build


def build_rotator(
    env: Mapping[str, str],
    *,
    store: SecretStore | None = None,
    clients: ClientFactory | None = None,
    **options: Any,
) -> Rotator:
    """A `Rotator` from an environment mapping; `store` and `clients` may be injected (tests)."""
    settings = RotationSettings.from_env(env)
    return _rotator(settings, store, clients, **options)


def _rotator(
    settings: RotationSettings,
    store: SecretStore | None,
    clients: ClientFactory | None,
    **options: Any,
) -> Rotator:
    options.setdefault("min_interval", DEFAULT_MIN_INTERVAL)
    options.setdefault("fixed_min_interval", settings.min_interval)
    return Rotator(
        store if store is not None else open_store(settings.common),
        clients if clients is not None else client_factory(settings.common),
        lease=settings.lease,
        test_attempts=settings.test_attempts,
        **options,
    )


def build_function(env: Mapping[str, str]) -> RotationFunction:
    """The rotation function's handler: a paced `Rotator` and the event admission policy."""
    settings = RotationSettings.from_env(env)
    return RotationFunction(_rotator(settings, None, None), events=settings.events)
