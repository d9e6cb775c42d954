"""An in-process stand-in for Cloud Logging's `google.logging.v2.LoggingServiceV2/WriteLogEntries`
(and `ListLogEntries` by log name, for reading a trail back).

Serves the one RPC the audit sink calls, with the real protobuf messages from
google-cloud-logging, over gRPC on a random loopback port. It enforces what the audit export must
cope with, as the documentation states it:

- an entry larger than 256 KiB is rejected with INVALID_ARGUMENT; with `partial_success` the
  other entries of the request are still written and the error carries
  `WriteLogEntriesPartialErrors` (index -> status) in its details, without it nothing is written;
- a request over 10 MB is rejected whole;
- entries with equal `insertId` and `timestamp` collapse (`unique_entries`), as queries show them.

    with LoggingStandIn() as standin:
        client = standin.client()              # real LoggingServiceV2Client, insecure channel
        standin.fail_next(grpc.StatusCode.UNAVAILABLE)
        standin.reject(lambda entry: entry.insert_id == "x")  # refuse chosen entries
        standin.requests                       # every accepted request: (log_name, entries, partial_success)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud.logging_v2.types import (
    ListLogEntriesRequest,
    ListLogEntriesResponse,
    WriteLogEntriesPartialErrors,
    WriteLogEntriesRequest,
    WriteLogEntriesResponse,
)
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from tests.standins.grpc_server import GrpcStandIn

MAX_ENTRY_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 10 * 1024 * 1024
_SERVICE = "google.logging.v2.LoggingServiceV2"
_REQUEST = WriteLogEntriesRequest.pb()
_RESPONSE = WriteLogEntriesResponse.pb()
_PARTIAL = WriteLogEntriesPartialErrors.pb()
_LIST_REQUEST = ListLogEntriesRequest.pb()
_LIST_RESPONSE = ListLogEntriesResponse.pb()


@dataclass
class WriteCall:
    """One WriteLogEntries request as received (whether it succeeded or not)."""

    log_name: str
    partial_success: bool
    entries: list[Any]  # google.logging.v2.LogEntry (raw protobuf)
    resource_type: str
    accepted: list[Any] = field(default_factory=list)
    status: grpc.StatusCode = grpc.StatusCode.OK


class LoggingStandIn(GrpcStandIn):
    """A WriteLogEntries server with Cloud Logging's size rules and injectable failures."""

    # Cloud Logging accepts requests up to 10 MB; take more so oversized ones reach our checks.
    server_options = (("grpc.max_receive_message_length", 32 * 1024 * 1024),)

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._lock = threading.Lock()
        self._faults: deque[grpc.StatusCode] = deque()
        self._reject: Callable[[Any], bool] | None = None
        self.calls: list[WriteCall] = []
        self.stored: list[Any] = []  # every accepted entry, in arrival order (duplicates kept)

    def fail_next(self, code: grpc.StatusCode, times: int = 1) -> None:
        """The next `times` calls fail whole with `code` (nothing is written)."""
        with self._lock:
            self._faults.extend([code] * times)

    def reject(self, predicate: Callable[[Any], bool] | None) -> None:
        """Refuse (INVALID_ARGUMENT) every entry for which `predicate(entry)` is true."""
        self._reject = predicate

    def stored_in(self, log_id: str) -> list[Any]:
        """The accepted entries written to one log (`projects/P/logs/<log_id>`), in order."""
        with self._lock:
            return [
                e for c in self.calls if c.log_name.endswith(f"/logs/{log_id}") for e in c.accepted
            ]

    def unique_entries(self) -> dict[tuple[str, int, int], Any]:
        """Stored entries collapsed by (insertId, timestamp), as Cloud Logging queries show them."""
        with self._lock:
            return {(e.insert_id, e.timestamp.seconds, e.timestamp.nanos): e for e in self.stored}

    # -- the RPC ------------------------------------------------------------------------------

    def _write(self, request: Any, context: grpc.ServicerContext) -> Any:
        call = WriteCall(
            log_name=request.log_name,
            partial_success=request.partial_success,
            entries=list(request.entries),
            resource_type=request.resource.type,
        )
        with self._lock:
            self.calls.append(call)
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            call.status = fault
            context.abort(fault, "injected failure")
        if request.ByteSize() > MAX_REQUEST_BYTES:
            call.status = grpc.StatusCode.INVALID_ARGUMENT
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Request payload size exceeds the limit"
            )
        errors: dict[int, str] = {}
        for index, entry in enumerate(request.entries):
            size = entry.ByteSize()
            if size > MAX_ENTRY_BYTES:
                errors[index] = f"Log entry with size {size} exceeds maximum size of 256.0K"
            elif self._reject is not None and self._reject(entry):
                errors[index] = "entry refused by the stand-in"
        accepted = [e for i, e in enumerate(request.entries) if i not in errors]
        if errors and not request.partial_success:
            accepted = []
        with self._lock:
            call.accepted = accepted
            self.stored.extend(accepted)
        if errors:
            call.status = grpc.StatusCode.INVALID_ARGUMENT
            partial = _PARTIAL()
            for index, message in errors.items():
                partial.log_entry_errors[index].CopyFrom(
                    status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message)
                )
            detail = any_pb2.Any()
            detail.Pack(partial)
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT,
                message=next(iter(errors.values())),
                details=[detail],
            )
            context.abort_with_status(rpc_status.to_status(status))
        return _RESPONSE()

    def _list(self, request: Any, context: grpc.ServicerContext) -> Any:
        """ListLogEntries for a `logName="..."` filter: the stored entries of that log, collapsed
        by (insertId, timestamp), oldest first, in one page."""
        wanted = request.filter.partition('logName="')[2].partition('"')[0]
        with self._lock:
            found = {}
            for call in self.calls:
                for entry in call.accepted:
                    if (entry.log_name or call.log_name) == wanted:
                        key = (entry.insert_id, entry.timestamp.seconds, entry.timestamp.nanos)
                        found.setdefault(key, entry)
        response = _LIST_RESPONSE()
        for entry in sorted(found.values(), key=lambda e: (e.timestamp.seconds, e.timestamp.nanos)):
            copy = response.entries.add()
            copy.CopyFrom(entry)
            copy.log_name = wanted
        return response

    # -- lifecycle ----------------------------------------------------------------------------

    def _handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            _SERVICE,
            {
                "WriteLogEntries": grpc.unary_unary_rpc_method_handler(
                    self._write,
                    request_deserializer=_REQUEST.FromString,
                    response_serializer=_RESPONSE.SerializeToString,
                ),
                "ListLogEntries": grpc.unary_unary_rpc_method_handler(
                    self._list,
                    request_deserializer=_LIST_REQUEST.FromString,
                    response_serializer=_LIST_RESPONSE.SerializeToString,
                ),
            },
        )

    def client(self) -> Any:
        """A real `LoggingServiceV2Client` on an insecure channel to this stand-in."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
        from google.cloud.logging_v2.services.logging_service_v2.transports import (
            LoggingServiceV2GrpcTransport,
        )

        channel = grpc.insecure_channel(self.target)
        transport = LoggingServiceV2GrpcTransport(
            channel=channel, credentials=AnonymousCredentials()
        )
        return LoggingServiceV2Client(transport=transport)
