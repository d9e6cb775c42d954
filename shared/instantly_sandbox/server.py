"""HTTP plumbing: a threaded loopback server that hands `/api/v2/...` to the gateway and
`/_sandbox/...` to the control API.

HTTP/1.1 with keep-alive, so a client's connection pool is reused as with the real API. Every open
connection is tracked and shut down on `stop()`, so neither an idle keep-alive connection nor a
response held by a `timeout` fault delays shutdown.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from instantly_sandbox.gateway import BASE_PATH
from instantly_sandbox.wire import HttpRequest, Outcome, error

MAX_BODY = 1 << 20
CONTROL_PREFIX = "/_sandbox/"

Dispatch = Callable[[HttpRequest], Outcome]


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Dispatch, control: Dispatch) -> None:
        self.api = api
        self.control = control
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection (handler threads then exit on their own)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class _IPv6Server(SandboxHTTPServer):
    address_family = socket.AF_INET6


def make_server(host: str, port: int, api: Dispatch, control: Dispatch) -> SandboxHTTPServer:
    cls = _IPv6Server if ":" in host else SandboxHTTPServer
    return cls((host, port), api, control)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "instantly-sandbox"
    sys_version = ""
    # Headers and body leave in one segment, without Nagle: otherwise each response can wait
    # for the client's delayed ACK (40 ms on Linux), which dominates a paged listing.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    server: SandboxHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the local stack print their own summaries."""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True)[::-1])  # first value wins
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = self._read_body(headers)
        except ValueError as exc:
            self.close_connection = True
            self._send(error(413 if "large" in str(exc) else 400, str(exc)))
            return
        request = HttpRequest(
            self.command, url.path, query, headers, body, str(self.client_address[0])
        )
        if url.path.startswith(CONTROL_PREFIX):
            outcome = self.server.control(request)
        elif url.path.startswith(BASE_PATH + "/"):
            outcome = self.server.api(request)
        else:
            outcome = error(404, f"Route {self.command}:{url.path} not found")
        self._send(outcome)

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ValueError("Request body is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("Request body is too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, outcome: Outcome) -> None:
        if outcome.drop:
            if outcome.hold_s > 0:
                self.server.stopping.wait(outcome.hold_s)
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client gave up first
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = outcome.encoded()
        self.send_response(outcome.status)
        self.send_header("Content-Type", outcome.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", str(uuid.uuid4()))
        for name, value in outcome.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client hung up
