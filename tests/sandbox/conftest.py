"""Helpers for the sandbox's own tests: httpx clients bound to a sandbox key."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from instantly_sandbox import Sandbox

ClientFactory = Callable[..., httpx.Client]
# One TLS context for every test client: building one per client costs ~20 ms of CPU.
_TLS = ssl.create_default_context()


@pytest.fixture
def client_for() -> Iterator[ClientFactory]:
    """`client_for(sb, key="admin" | <key string>, timeout=5.0) -> httpx.Client` on `sb.base_url`
    with the bearer key (a seeded key's name, or a raw key string); closed at teardown."""
    clients: list[httpx.Client] = []

    def make(sb: Sandbox, key: str | None = "admin", *, timeout: float = 5.0) -> httpx.Client:
        headers = {"User-Agent": "sandbox-tests/1.0"}
        if key is not None:
            secret = sb.keys[key].key if key in sb.keys else key
            headers["Authorization"] = f"Bearer {secret}"
        client = httpx.Client(base_url=sb.base_url, headers=headers, timeout=timeout, verify=_TLS)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def admin(sandbox: Sandbox, client_for: ClientFactory) -> httpx.Client:
    """A client of the demo sandbox with the `all:all` admin key."""
    return client_for(sandbox)


class Receiver:
    """A tiny webhook target: records every POST, answers `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.header_lines: list[list[tuple[str, str]]] = []  # as sent, duplicates kept
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                receiver.header_lines.append(list(self.headers.items()))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    yield target
    target.close()
