"""The Google Cloud backend: Pub/Sub through google-cloud-pubsub.

Import this module only when publishing to Pub/Sub: it pulls in grpc and protobuf. The client is
created on the first publish (never at import, never before a gunicorn worker forks) and reused
by every later publish of the instance. `publish` waits on the client's future with a bound, and
bounds the client's own retries by the same time, so that a message we answered 503 for is not
published minutes later by a background retry (it may still land within that bound: consumers
drop redeliveries by `event_id`).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.api_core import retry as core_retry
from google.cloud.pubsub_v1 import PublisherClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from instantly_guard.google_errors import is_transient
from instantly_guard.publish.base import PublishError

# Extra wait on the future beyond the RPC deadline, for the batch to flush and the callback to run.
_FUTURE_SLACK_SECONDS = 0.5


def _default_client(emulator_host: str | None) -> Any:
    if emulator_host:
        # An emulator or a test stand-in: plaintext gRPC, no credentials.
        channel = grpc.insecure_channel(emulator_host)
        return PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    return PublisherClient()


class PubSubPublisher:
    """Publishes to one topic and waits (bounded) for Pub/Sub's acknowledgement."""

    def __init__(
        self,
        topic: str,
        *,
        emulator_host: str | None = None,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._topic = topic
        self._factory = client_factory or (lambda: _default_client(emulator_host))
        self._client: Any = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def topic(self) -> str:
        return self._topic

    def _get_client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._closed:
                    raise PublishError("publisher is closed", retryable=False)
                if self._client is None:
                    self._client = self._factory()
                client = self._client
        return client

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        try:
            client = self._get_client()
            future = client.publish(
                self._topic,
                data,
                retry=core_retry.Retry(
                    predicate=is_transient,
                    initial=0.05,
                    maximum=max(0.05, timeout / 4),
                    multiplier=2.0,
                    timeout=timeout,
                ),
                timeout=timeout,
                **dict(attributes),
            )
            message_id: str = future.result(timeout=timeout + _FUTURE_SLACK_SECONDS)
        except PublishError:
            raise
        except (concurrent.futures.TimeoutError, TimeoutError) as exc:
            raise PublishError(f"Pub/Sub publish not acknowledged within {timeout:g}s") from exc
        except Exception as exc:
            raise PublishError(f"Pub/Sub publish failed: {type(exc).__name__}: {exc}") from exc
        return message_id

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            try:
                client.stop()
            finally:
                client.transport.close()
