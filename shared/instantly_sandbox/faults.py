"""Fault injection: make the next N calls to an operation fail in a chosen way.

Operation keys are `"METHOD /path-template"` as in the OpenAPI document without the `/api/v2`
base (`"POST /api-keys"`, `"DELETE /api-keys/{id}"`); `"*"` matches every API operation. Modes:

- `error_500`, `error_503`, `error_429`: answer that status with the JSON error envelope.
- `error_502`: answer 502 with an HTML page, as a load balancer in front of the API would.
- `timeout`: hold the connection for `hold_s` seconds (default: the sandbox's `timeout_hold_s`),
  then close it without answering. Longer than a client timeout, so the client gives up first.
- `lost_response`: carry the request out (the change is committed), then drop the connection
  without a response: the case that leaves orphaned keys behind a create.

By default a failing call changes nothing (`commit=False`), as when a request dies before reaching
the application. `commit=True` runs the request first and then fails it (a 500 or a timeout after
the write happened); `lost_response` always commits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, get_args

FaultMode = Literal["error_500", "error_502", "error_503", "error_429", "timeout", "lost_response"]
FAULT_MODES: tuple[str, ...] = get_args(FaultMode)
ANY_OPERATION = "*"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_BASE = "/api/v2"


def normalise_operation(operation: str) -> str:
    """`"post /api/v2/api-keys"` -> `"POST /api-keys"`; raises ValueError on a malformed key."""
    if operation == ANY_OPERATION:
        return operation
    method, sep, path = operation.strip().partition(" ")
    method = method.upper()
    path = path.strip()
    if not sep or method not in _METHODS or not path.startswith("/"):
        raise ValueError(f"operation must look like 'POST /api-keys', got {operation!r}")
    if path.startswith(_BASE + "/"):
        path = path[len(_BASE) :]
    return f"{method} {path}"


@dataclass(frozen=True)
class Fault:
    """One armed fault; `remaining` counts the calls it still applies to."""

    operation: str
    mode: FaultMode
    remaining: int
    hold_s: float | None = None
    commit: bool = False

    @property
    def commits(self) -> bool:
        """Whether the request is carried out before the failure."""
        return self.commit or self.mode == "lost_response"


class Faults:
    """The armed faults of one sandbox. Thread-safe; faults for one operation fire in FIFO order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self.fired: list[tuple[str, FaultMode]] = []

    def fail_next(
        self,
        operation: str,
        times: int = 1,
        mode: FaultMode = "error_500",
        *,
        hold_s: float | None = None,
        commit: bool = False,
    ) -> None:
        """Make the next `times` calls to `operation` fail with `mode` (see the module doc)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(FAULT_MODES)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        if hold_s is not None and hold_s < 0:
            raise ValueError("hold_s must be >= 0")
        fault = Fault(normalise_operation(operation), mode, times, hold_s, commit)
        with self._lock:
            self._armed.append(fault)

    def clear(self) -> None:
        """Disarm every fault (the history in `fired` stays)."""
        with self._lock:
            self._armed.clear()

    def pending(self) -> list[Fault]:
        """The faults still armed, in firing order."""
        with self._lock:
            return list(self._armed)

    def take(self, operation: str) -> Fault | None:
        """Consume one firing of the first fault armed for `operation`, if any."""
        with self._lock:
            for index, fault in enumerate(self._armed):
                if fault.operation in (operation, ANY_OPERATION):
                    if fault.remaining <= 1:
                        del self._armed[index]
                    else:
                        self._armed[index] = Fault(
                            fault.operation,
                            fault.mode,
                            fault.remaining - 1,
                            fault.hold_s,
                            fault.commit,
                        )
                    self.fired.append((operation, fault.mode))
                    return fault
        return None
