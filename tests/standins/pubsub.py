"""An in-process stand-in for Pub/Sub's `google.pubsub.v1.Publisher/Publish` gRPC method.

The official emulator is not available here, so this serves the one RPC the publisher client
calls, with the real request/response messages from google-cloud-pubsub, on a random loopback
port. Point the real client at it with `PubSubPublisher(topic, emulator_host=standin.target)` or
`PUBSUB_EMULATOR_HOST=standin.target`.

    with PubSubStandIn() as standin:
        standin.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)   # then succeed
        ...
        standin.messages  # every stored PubsubMessage, in order
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

import grpc
from google.pubsub_v1.types import PublishRequest, PublishResponse
from tests.standins.grpc_server import GrpcStandIn


@dataclass(frozen=True)
class StoredMessage:
    topic: str
    message_id: str
    data: bytes
    attributes: dict[str, str]


class PubSubStandIn(GrpcStandIn):
    """Serves Publish; stores messages; injects failures and delays on demand."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: deque[grpc.StatusCode] = deque()
        self._always: grpc.StatusCode | None = None
        self._delay = 0.0
        self.messages: list[StoredMessage] = []
        self.calls = 0

    def fail_next(self, code: grpc.StatusCode, times: int = 1) -> None:
        """The next `times` Publish calls fail with `code` (and store nothing)."""
        with self._lock:
            self._faults.extend([code] * times)

    def fail_always(self, code: grpc.StatusCode | None) -> None:
        """Every Publish call fails with `code` until called again with None."""
        with self._lock:
            self._always = code

    def delay(self, seconds: float) -> None:
        """Sleep this long before answering each call (to exercise the client's deadline)."""
        self._delay = seconds

    def _publish(self, request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        with self._lock:
            self.calls += 1
            code = self._faults.popleft() if self._faults else self._always
        if self._delay:
            time.sleep(self._delay)
        if code is not None:
            context.abort(code, f"stand-in failure: {code.name}")
        ids = []
        with self._lock:
            for message in request.messages:
                message_id = str(next(self._ids))
                ids.append(message_id)
                self.messages.append(
                    StoredMessage(
                        topic=request.topic,
                        message_id=message_id,
                        data=bytes(message.data),
                        attributes=dict(message.attributes),
                    )
                )
        return PublishResponse(message_ids=ids)

    def _handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher",
            {
                "Publish": grpc.unary_unary_rpc_method_handler(
                    self._publish,
                    request_deserializer=PublishRequest.deserialize,
                    response_serializer=PublishResponse.serialize,
                )
            },
        )
