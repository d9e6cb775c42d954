"""The rotation's errors, under the library's root `GuardError`:

    GuardError
    └── RotationError          a rotation could not complete; `retryable` says whether
        │                      redelivering the event can help
        ├── RotationBusyError  another delivery holds the lease (always retryable)
        └── KeyTestError       the new key did not work; it was deleted (always retryable)

Other failures reach the caller as they are: ConfigError for a badly declared secret, BackendError
and InstantlyError from either side (each with its own `retryable`).
"""

from __future__ import annotations

from instantly_guard.errors import GuardError


class RotationError(GuardError):
    """A rotation could not complete. `retryable`: whether redelivering the event can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


class RotationBusyError(RotationError):
    """Another delivery holds the lease on this secret's rotation; try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class KeyTestError(RotationError):
    """The freshly created key did not work; it was deleted and nothing else changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


def describe(exc: BaseException) -> str:
    """`Type: message` for logs and the last-error annotation. Our errors never carry values."""
    return f"{type(exc).__name__}: {exc}"[:400]
