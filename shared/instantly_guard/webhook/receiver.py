"""Building the receiver once per instance from its environment.

`wire_receiver(env)` reads the configuration and wires the receiver, raising `ConfigError` (or
whatever failed: a bundle missing google-cloud-pubsub, a bug); the function holds it in a
`instantly_guard.lazy.Lazy`, which answers 503 and retries a failed build (docs/lazy-build.md).
`build_receiver(env)` never raises: a failure yields a receiver that answers 503 to every request
and logs the problem once (tests, benchmarks and the local stack use it).

Heavy backends are imported here, only when chosen: the Pub/Sub client (grpc, protobuf) only
with the Pub/Sub publisher. Secret Manager and Cloud Logging client libraries are never imported:
the secret arrives as a file or an environment variable, logs leave as JSON lines on stdout.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from instantly_guard.errors import ConfigError
from instantly_guard.lazy import describe_build_error
from instantly_guard.publish.base import Publisher, PublishError
from instantly_guard.webhook.auth import Authenticator, BasicAuth, Unconfigured
from instantly_guard.webhook.dedupe import RecentIds
from instantly_guard.webhook.handler import Deps, ProblemLog, RequestLike, Response, handle
from instantly_guard.webhook.secrets import FileSecretSource, SecretSource, StaticSecretSource
from instantly_guard.webhook.settings import PublisherKind, SecretRef, WebhookSettings

# A mounted secret file is looked at (one stat) at most once a second, not on every request: a
# new version is still taken at once when a delivery carries it (`Authenticator.check` re-reads
# the file on a mismatch), and a removed or broken file answers 503 within a second.
FILE_STAT_INTERVAL: Final = 1.0


class _Refusing:
    """The publisher of an unconfigured receiver: never reached, and fails if it ever is."""

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        raise PublishError("receiver is not configured", retryable=False)

    def close(self) -> None:
        return None


class Receiver:
    """A built receiver: `handle(request)` answers one delivery; `close()` releases clients."""

    def __init__(
        self, deps: Deps, settings: WebhookSettings | None, *, build_error: str | None = None
    ) -> None:
        self.deps = deps
        self.settings = settings
        # Set when building failed with an unexpected error (not a configuration error): such a
        # receiver answers 503 like an unconfigured one, and a later build may succeed.
        self.build_error = build_error

    @property
    def configured(self) -> bool:
        return self.settings is not None

    @property
    def log_level(self) -> str:
        return self.settings.common.log_level if self.settings else "INFO"

    def handle(self, request: RequestLike) -> Response:
        return handle(request, self.deps)

    def close(self) -> None:
        self.deps.publisher.close()


def make_publisher(settings: WebhookSettings) -> Publisher:
    """The publisher the settings ask for. Imports a backend's client library only when chosen."""
    if settings.publisher is PublisherKind.PUBSUB:
        from instantly_guard.publish.gcp import PubSubPublisher

        if settings.topic is None:  # WebhookSettings requires a topic for Pub/Sub
            raise ConfigError("WEBHOOK_PUBSUB_TOPIC is required when publishing to Pub/Sub")
        return PubSubPublisher(settings.topic, emulator_host=settings.emulator_host)
    if settings.publisher is PublisherKind.NOOP:
        from instantly_guard.publish.noop import NoopPublisher

        return NoopPublisher()
    from instantly_guard.publish.local import OutboxPublisher

    return OutboxPublisher(settings.common.state_dir)


def _source(ref: SecretRef, recheck: float) -> SecretSource:
    if ref.path is not None:
        return FileSecretSource(
            f"{ref.name}_FILE", ref.path, recheck_seconds=recheck, stat_interval=FILE_STAT_INTERVAL
        )
    return StaticSecretSource(ref.name, ref.value or "")


def _unconfigured(problem: str, problems: ProblemLog | None) -> Deps:
    return Deps(
        gate=Unconfigured(problem),
        publisher=_Refusing(),
        recent=RecentIds(0),
        problems=problems if problems is not None else ProblemLog(),
    )


def wire_receiver(
    env: Mapping[str, str],
    *,
    publisher: Publisher | None = None,
    clock: Callable[[], datetime] | None = None,
    problems: ProblemLog | None = None,
) -> Receiver:
    """Read the configuration from `env` and wire the receiver; raises `ConfigError` for a bad
    configuration and lets any other failure propagate."""
    return _wire(WebhookSettings.from_env(env), publisher, clock, problems)


def build_receiver(
    env: Mapping[str, str],
    *,
    publisher: Publisher | None = None,
    clock: Callable[[], datetime] | None = None,
    problems: ProblemLog | None = None,
) -> Receiver:
    """`wire_receiver` that never raises: a configuration error or any other failure yields a
    receiver answering 503 (`build_error` set for a failure that is not configuration)."""
    try:
        return wire_receiver(env, publisher=publisher, clock=clock, problems=problems)
    except ConfigError as exc:
        return Receiver(_unconfigured(str(exc), problems), None)
    except Exception as exc:  # e.g. ImportError of google-cloud-pubsub in a broken bundle
        error = describe_build_error(exc)
        deps = _unconfigured(f"could not build the receiver ({error})", problems)
        return Receiver(deps, None, build_error=error)


def _wire(
    settings: WebhookSettings,
    publisher: Publisher | None,
    clock: Callable[[], datetime] | None,
    problems: ProblemLog | None,
) -> Receiver:
    now = clock or (lambda: datetime.now(UTC))
    recheck = settings.secret_recheck
    basic = None
    if settings.basic_user is not None and settings.basic_password is not None:
        basic = BasicAuth(settings.basic_user, _source(settings.basic_password, recheck))
    gate = Authenticator(
        _source(settings.secret, recheck),
        previous=_source(settings.previous_secret, recheck) if settings.previous_secret else None,
        header=settings.secret_header,
        basic=basic,
        allowed_networks=[ipaddress.ip_network(n) for n in settings.allowed_networks],
        proxy_hops=settings.proxy_hops,
        clock=now,
    )
    deps = Deps(
        gate=gate,
        publisher=publisher if publisher is not None else make_publisher(settings),
        recent=RecentIds(settings.dedupe_window, settings.dedupe_size),
        max_body_bytes=settings.max_body_bytes,
        publish_timeout=settings.publish_timeout,
        project=settings.common.project,
        clock=now,
        problems=problems if problems is not None else ProblemLog(),
    )
    return Receiver(deps, settings)
