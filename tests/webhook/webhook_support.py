"""Shared helpers for the webhook tests: secrets, environments, and fake publishers of the port."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instantly_guard.publish.base import PublishError

SECRET = "wh-secret-0123456789abcdefghijklmnopqrstuv"
# Same length as SECRET, differs in the last byte only.
WRONG_SAME_LENGTH = SECRET[:-1] + ("w" if SECRET[-1] != "w" else "x")
PREVIOUS = "wh-previous-0123456789abcdefghijklmnopqrs"
ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "functions" / "webhook" / "main.py"

# Every variable the receiver reads, so a test starts from a clean slate whatever the shell has.
WEBHOOK_VARS = (
    "GUARD_BACKEND",
    "GUARD_STATE_DIR",
    "GOOGLE_CLOUD_PROJECT",
    "LOG_LEVEL",
    "INSTANTLY_WEBHOOK_SECRET",
    "INSTANTLY_WEBHOOK_SECRET_FILE",
    "INSTANTLY_WEBHOOK_SECRET_PREVIOUS",
    "INSTANTLY_WEBHOOK_SECRET_PREVIOUS_FILE",
    "WEBHOOK_SECRET_HEADER",
    "WEBHOOK_BASIC_USER",
    "WEBHOOK_BASIC_PASSWORD",
    "WEBHOOK_BASIC_PASSWORD_FILE",
    "WEBHOOK_ALLOWED_CIDRS",
    "WEBHOOK_PROXY_HOPS",
    "WEBHOOK_MAX_BODY_BYTES",
    "WEBHOOK_PUBLISHER",
    "WEBHOOK_PUBSUB_TOPIC",
    "WEBHOOK_PUBLISH_TIMEOUT",
    "WEBHOOK_DEDUPE_WINDOW",
    "WEBHOOK_DEDUPE_SIZE",
    "PUBSUB_EMULATOR_HOST",
)


def local_env(state_dir: Path, **overrides: str | None) -> dict[str, str]:
    """A local-backend environment with SECRET configured; None in `overrides` removes a key."""
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_WEBHOOK_SECRET": SECRET,
    }
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class RecordingPublisher:
    """A publisher that keeps messages in memory; can be told to fail the next calls."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, dict[str, str]]] = []
        self.failures = 0
        self.calls = 0
        self._lock = threading.Lock()

    def fail_next(self, times: int = 1) -> None:
        self.failures += times

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        with self._lock:
            self.calls += 1
            if self.failures:
                self.failures -= 1
                raise PublishError("injected publish failure")
            self.messages.append((data, dict(attributes)))
            return f"m-{len(self.messages)}"

    def close(self) -> None:
        return None


def ids(publisher: RecordingPublisher) -> list[str]:
    return [attrs["event_id"] for _, attrs in publisher.messages]


def json_headers(secret: str | None = SECRET, **extra: Any) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["x-webhook-secret"] = secret
    headers.update({k.replace("_", "-"): str(v) for k, v in extra.items()})
    return headers


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FunctionServer:
    """functions-framework's production server (gunicorn) running main.py in a subprocess."""

    def __init__(
        self, env: Mapping[str, str], *, workers: int = 3, threads: int = 8, log: Path
    ) -> None:
        import os

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        base = {k: v for k, v in os.environ.items() if k not in WEBHOOK_VARS}
        self.env = {**base, **env, "WORKERS": str(workers), "THREADS": str(threads)}
        self.log = log
        self.process: Any = None

    def __enter__(self) -> FunctionServer:
        import subprocess
        import sys
        import time

        import httpx

        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target",
                "receive_webhook",
                "--source",
                str(MAIN),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except Exception:
                self.process.kill()
                self.process.wait(5)
        self._log_file.close()
