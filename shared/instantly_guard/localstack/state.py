"""`<state dir>/stack.json`: where a running local stack is, for `make demo` and the next start.

It holds URLs, process ids and names, never a secret value. A stack whose own process is gone
but whose children survived (the stack was killed with SIGKILL) is "stale": the next start stops
those children (they are ours: their command lines are checked) and clears the state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from instantly_guard.errors import ConfigError
from instantly_guard.localstack.processes import group_alive, pid_alive, signal_group

STACK_FILE = "stack.json"
# What a start wipes: state that belongs to the previous sandbox, whose keys no longer exist.
STACK_STATE = ("secrets", "outbox", "audit", "logs", "webhook-secret", "check-policy.toml")
_MARKERS = ("instantly_guard", "functions-framework", "functions_framework")


@dataclass
class ServiceInfo:
    url: str
    pid: int
    log: str


@dataclass
class StackInfo:
    """What `stack.json` records."""

    pid: int
    started: str
    state_dir: str
    sandbox: ServiceInfo
    api_base: str
    control_url: str
    functions: dict[str, ServiceInfo]
    webhook_id: str
    secrets: dict[str, str] = field(default_factory=dict)
    check_policy: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackInfo:
        return cls(
            pid=int(data["pid"]),
            started=str(data["started"]),
            state_dir=str(data["state_dir"]),
            sandbox=ServiceInfo(**data["sandbox"]),
            api_base=str(data["api_base"]),
            control_url=str(data["control_url"]),
            functions={k: ServiceInfo(**v) for k, v in data["functions"].items()},
            webhook_id=str(data["webhook_id"]),
            secrets=dict(data.get("secrets") or {}),
            check_policy=str(data.get("check_policy") or ""),
        )

    def child_pids(self) -> list[int]:
        return [self.sandbox.pid, *(f.pid for f in self.functions.values())]


def stack_file(state_dir: Path) -> Path:
    return state_dir / STACK_FILE


def write(state_dir: Path, info: StackInfo) -> None:
    path = stack_file(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read(state_dir: Path) -> StackInfo | None:
    """The recorded stack, or None when there is none (or the file is unreadable)."""
    try:
        return StackInfo.from_json(json.loads(stack_file(state_dir).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(state_dir: Path) -> StackInfo | None:
    """The recorded stack if its own process is alive, else None."""
    info = read(state_dir)
    if info is None or not pid_alive(info.pid) or info.pid == os.getpid():
        return None
    return info


def remove(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        stack_file(state_dir).unlink()


LOCK_FILE = "stack.lock"


class StackLock:
    """An exclusive lock on `<state dir>/stack.lock`, held by the process running the stack from
    the moment it starts preparing the directory until it stops (the kernel drops it if the
    process dies). Two `make run` started at the same instant: the second is told, not crashed."""

    def __init__(self, state_dir: Path) -> None:
        import fcntl

        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_dir / LOCK_FILE
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise ConfigError(
                f"another local stack is starting or running from {state_dir} (pid {holder}): "
                f"use it (`make demo`), stop it (Ctrl-C in its terminal, or `kill {holder}`), "
                "or give this one its own --state-dir and --base-port"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def prepare(state_dir: Path, *, ready: Callable[[], None] | None = None) -> list[str]:
    """Make `state_dir` ready for a new stack; return what was cleaned up, for the guide.

    Refuses (ConfigError) when another stack is running from this state directory. Stops the
    surviving children of a stack that was killed, then calls `ready` (the port check: it may
    refuse too), and only then wipes the previous stack's state: a start that cannot succeed
    leaves the previous run's state (its outbox, its audit export) as it was.
    """
    notes: list[str] = []
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = read(state_dir)
    if info is not None and info.pid != os.getpid() and pid_alive(info.pid):
        raise ConfigError(
            f"a local stack is already running from {state_dir} (pid {info.pid}, started "
            f"{info.started}): use it (`make demo`), or stop it with Ctrl-C in its terminal or "
            f"`kill {info.pid}`"
        )
    if info is not None:
        stale = [pid for pid in info.child_pids() if group_alive(pid) and _is_ours(pid)]
        for pid in stale:
            signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(group_alive(pid) for pid in stale) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in stale:
            signal_group(pid, signal.SIGKILL)
        if stale:
            notes.append(f"stopped {len(stale)} process(es) left over by a killed stack")
    if ready is not None:
        ready()
    for name in STACK_STATE:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    remove(state_dir)
    return notes


def _is_ours(pid: int) -> bool:
    """True when `pid` runs one of our commands (guards against a recycled process id)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        # No /proc (macOS): trust the recorded id; the group was created by our stack.
        return True
    return any(marker in cmdline for marker in _MARKERS)
