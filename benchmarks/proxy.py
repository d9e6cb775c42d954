"""A delaying reverse proxy the latency benchmarks start in front of the sandbox.

What a real call to Instantly costs that loopback does not: each request waits `delay_s`
(default 150 ms) before it is forwarded, and its answer is sent back no faster than
`bytes_per_s` (default 20 MB/s), per request. Keep-alive on both sides, one upstream connection
per serving thread, so concurrency through the proxy is what the client makes of it.

    with DelayingProxy(sandbox.url) as proxy:
        client = InstantlyClient(key, proxy.url + "/api/v2", ...)
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

_CHUNK = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class DelayingProxy:
    """Serve on 127.0.0.1 (a free port), forwarding every request to `upstream` (http://host:port)."""

    def __init__(self, upstream: str, *, delay_s: float = 0.150, bytes_per_s: float = 20e6) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.delay_s = delay_s
        self.bytes_per_s = bytes_per_s
        self.requests = 0
        self._count_lock = threading.Lock()
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self._upstream, timeout=60)
            self._local.conn = conn
        return conn

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                answer = conn.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            except (http.client.HTTPException, OSError):
                conn.close()  # the upstream closed an idle connection: one fresh try
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                with proxy._count_lock:
                    proxy.requests += 1
                time.sleep(proxy.delay_s)
                status, answer_headers, payload = proxy._forward(
                    self.command, self.path, headers, body
                )
                self.send_response_only(status)
                for name, value in answer_headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                started = time.perf_counter()
                for offset in range(0, len(payload), _CHUNK):
                    chunk = payload[offset : offset + _CHUNK]
                    self.wfile.write(chunk)
                    # Paced: the bytes sent so far may not arrive before they would at the cap.
                    due = (offset + len(chunk)) / proxy.bytes_per_s
                    late = due - (time.perf_counter() - started)
                    if late > 0:
                        time.sleep(late)
                self.wfile.flush()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay  # noqa: N815

        return Handler
