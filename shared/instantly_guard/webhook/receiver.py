"""Building the receiver once per instance from its environment: `build_receiver(env)`.

A configuration error does not raise: it yields a receiver that answers 503 to every request and
logs the problem once (an exception at cold start would crash-loop the instance and hide the
message in a stack trace). Neither does any other error while building (a bundle missing
google-cloud-pubsub, a bug): it yields the same fail-closed receiver, marked as a failed build.

`LazyReceiver` is what the function holds: it builds on the first request, and rebuilds a failed
build at most every `BUILD_RETRY_SECONDS` (a transient error at cold start must not poison the
instance for its whole life, and a persistent one costs one attempt per interval, not one per
request). A configuration error is not retried: the environment of an instance never changes.
Every attempt shares one problem log, so a problem that persists is logged once. Heavy backends are imported here, only when chosen: the Pub/Sub
client (grpc, protobuf) only with the Pub/Sub publisher. Secret Manager and Cloud Logging client
libraries are never imported: the secret arrives as a file or an environment variable, logs leave
as JSON lines on stdout.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from instantly_guard.errors import ConfigError
from instantly_guard.publish.base import Publisher, PublishError
from instantly_guard.redaction import redact
from instantly_guard.webhook.auth import Authenticator, BasicAuth, Unconfigured
from instantly_guard.webhook.dedupe import RecentIds
from instantly_guard.webhook.handler import LOGGER, Deps, ProblemLog, RequestLike, Response, handle
from instantly_guard.webhook.secrets import FileSecretSource, SecretSource, StaticSecretSource
from instantly_guard.webhook.settings import PublisherKind, SecretRef, WebhookSettings

# How often a receiver whose build failed with an unexpected error is built again.
BUILD_RETRY_SECONDS: Final = 5.0
_MAX_REASON_CHARS: Final = 300


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
        return FileSecretSource(f"{ref.name}_FILE", ref.path, recheck_seconds=recheck)
    return StaticSecretSource(ref.name, ref.value or "")


def _unconfigured(problem: str, problems: ProblemLog | None) -> Deps:
    return Deps(
        gate=Unconfigured(problem),
        publisher=_Refusing(),
        recent=RecentIds(0),
        problems=problems if problems is not None else ProblemLog(),
    )


def _describe_build_error(exc: BaseException) -> str:
    """A one-line, secret-free description: the type, and the module for a failed import."""
    if isinstance(exc, ImportError):
        what = f"module {exc.name!r} is missing" if exc.name else redact(str(exc))
    else:
        what = redact(str(exc))
    text = f"{type(exc).__name__}: {what}" if what else type(exc).__name__
    return " ".join(text.split())[:_MAX_REASON_CHARS]


def build_receiver(
    env: Mapping[str, str],
    *,
    publisher: Publisher | None = None,
    clock: Callable[[], datetime] | None = None,
    problems: ProblemLog | None = None,
) -> Receiver:
    """Read the configuration from `env` and wire the receiver (see the module docstring).

    Never raises: a configuration error or any other failure yields a receiver answering 503.
    `problems` lets successive builds share one problem log (see `LazyReceiver`).
    """
    try:
        settings = WebhookSettings.from_env(env)
    except ConfigError as exc:
        return Receiver(_unconfigured(str(exc), problems), None)
    except Exception as exc:
        error = _describe_build_error(exc)
        deps = _unconfigured(f"could not read the configuration ({error})", problems)
        return Receiver(deps, None, build_error=error)
    try:
        return _wire(settings, publisher, clock, problems)
    except ConfigError as exc:
        return Receiver(_unconfigured(str(exc), problems), None)
    except Exception as exc:  # e.g. ImportError of google-cloud-pubsub in a broken bundle
        error = _describe_build_error(exc)
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


class LazyReceiver:
    """The receiver of one instance: built on first use, a failed build retried now and then.

    `get()` builds from `env()` on the first call and calls `on_build` with each receiver it
    builds (the function configures logging there). A receiver whose build failed with an
    unexpected error is built again at most every `retry_seconds`; while that happens, other
    requests keep the failed receiver (503) rather than wait. Thread-safe.
    """

    def __init__(
        self,
        env: Callable[[], Mapping[str, str]],
        *,
        on_build: Callable[[Receiver], None] | None = None,
        retry_seconds: float = BUILD_RETRY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        builder: Callable[..., Receiver] = build_receiver,
        logger: logging.Logger = LOGGER,
    ) -> None:
        self._env = env
        self._on_build = on_build
        self._retry_seconds = retry_seconds
        self._monotonic = monotonic
        self._builder = builder
        self._logger = logger
        self._problems = ProblemLog(logger)
        self._receiver: Receiver | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._receiver is not None

    def get(self) -> Receiver:
        receiver = self._receiver
        if receiver is not None and (
            receiver.build_error is None or self._monotonic() < self._retry_at
        ):
            return receiver
        # The first build is waited for; a rebuild is done by one request while the rest answer
        # with the failed receiver.
        if receiver is None:
            self._lock.acquire()
        elif not self._lock.acquire(blocking=False):
            return receiver
        try:
            current = self._receiver
            if current is not None and (
                current.build_error is None or self._monotonic() < self._retry_at
            ):
                return current
            built = self._builder(self._env(), problems=self._problems)
            if built.build_error is not None:
                self._retry_at = self._monotonic() + self._retry_seconds
            elif current is not None:
                self._logger.info(
                    "webhook receiver built after an earlier failure",
                    extra={"fields": {"outcome": "recovered"}},
                )
            if self._on_build is not None:
                self._on_build(built)
            self._receiver = built
            return built
        finally:
            self._lock.release()
