"""Child processes of the local stack: each in its own session (process group), stopped as a group.

A child runs in a new session, so the terminal's Ctrl-C reaches only the stack's own process,
which then stops the children in order: SIGTERM to each whole group (gunicorn's master and its
workers alike), a bounded wait, then SIGKILL for whatever is left. Nothing is left behind holding
a port, and a second start finds its ports free.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from instantly_guard.errors import ConfigError, GuardError

STOP_TIMEOUT_S = 8.0


class StackError(GuardError):
    """The local stack could not start (a child died, a port never answered)."""


@dataclass
class Child:
    """One running child process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    capture_stdout: bool = False,
) -> Child:
    """Start `argv` in a new session; stderr (and stdout unless captured) go to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else log,
            stderr=log,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise StackError(f"cannot start {name}: {exc}") from exc
    return Child(name=name, process=process, log_path=log_path, _log=log)


def read_line(child: Child, timeout: float) -> str:
    """The first line `child` writes on its captured stdout, within `timeout` seconds."""
    stream = child.process.stdout
    if stream is None:
        raise StackError(f"{child.name}: stdout is not captured")
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StackError(f"{child.name} did not report ready within {timeout:.0f}s")
            if not selector.select(timeout=min(remaining, 0.2)):
                if not child.alive():
                    raise StackError(_died(child))
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise StackError(_died(child))
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode("utf-8")


def wait_http(child: Child, url: str, timeout: float) -> None:
    """Wait until `url` answers HTTP at all (any status): the server is accepting requests."""
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive():
            raise StackError(_died(child))
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise StackError(
                f"{child.name} did not answer on {url} within {timeout:.0f}s; "
                f"its log ({child.log_path}) ends with:\n{child.log_tail()}"
            )
        time.sleep(0.1)


def _died(child: Child) -> str:
    code = child.process.poll()
    return (
        f"{child.name} exited (status {code}) before it was ready; "
        f"its log ({child.log_path}) ends with:\n{child.log_tail()}"
    )


def stop_all(children: Sequence[Child], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every child's process group, wait up to `timeout`, SIGKILL the rest. Idempotent."""
    for child in children:
        signal_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=remaining)
    for child in children:
        # Even when the leader exited, a worker of its group may linger: kill the group.
        signal_group(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=5)
        for stream in (child.process.stdout, child._log):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to process group `pgid`; False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: Mapping[str, int], host: str = "127.0.0.1") -> None:
    """ConfigError naming every busy port, with the flag that moves it."""
    busy = [f"{what} port {port}" for what, port in ports.items() if not port_free(port, host)]
    if busy:
        flags = ", ".join(
            f"--{what}-port" for what, port in ports.items() if not port_free(port, host)
        )
        raise ConfigError(
            f"{'; '.join(busy)} already in use on {host}. Stop whatever listens there "
            f"(`lsof -i :PORT` or `ss -ltnp` shows it) or choose other ports ({flags}, "
            f"or --base-port N for N..N+{len(ports) - 1})."
        )
