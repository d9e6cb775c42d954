"""What every in-process gRPC stand-in shares: a real grpc server on a free loopback port."""

from __future__ import annotations

from concurrent import futures
from typing import Any, Self

import grpc


class GrpcStandIn:
    """Start with `start()` (or as a context manager); point a real client at `target`.

    Subclasses provide `_handler()`, the generic handler for the methods they serve.
    """

    max_workers = 8
    server_options: tuple[tuple[str, Any], ...] = ()

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"{self._host}:{self.port}"

    def _handler(self) -> grpc.GenericRpcHandler:
        raise NotImplementedError

    def start(self) -> Self:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers),
            options=list(self.server_options),
        )
        server.add_generic_rpc_handlers((self._handler(),))
        self.port = server.add_insecure_port(f"{self._host}:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
