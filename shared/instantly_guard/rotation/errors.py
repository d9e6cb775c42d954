"""The rotation's errors, under the library's root `GuardError`:

    GuardError
    └── RotationError          a rotation could not complete; `retryable` says whether
        │                      redelivering the event can help
        ├── RotationBusyError  another delivery holds the lease (always retryable)
        ├── KeyTestError       the new key did not work; it was deleted (always retryable)
        └── RotationStateFullError  the state would not fit Secret Manager's annotation limit
                               (never retryable: old keys must be revoked first)

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


class RotationStateFullError(RotationError):
    """The rotation state would not fit the secret's annotations (Secret Manager: keys plus
    values less than 16 KiB), almost always because old keys keep failing to be revoked. A new
    rotation is refused before it mints anything; redelivering cannot help until the backlog
    is cleared, so it is acknowledged and raised as an alert (`log_fields`)."""

    def __init__(self, secret: str, *, size: int, limit: int, revocations: int, destructions: int):
        self.log_fields = {
            "rotation_backlog": True,
            "state_bytes": size,
            "state_limit": limit,
            "revocations_pending": revocations,
            "destructions_pending": destructions,
        }
        super().__init__(
            f"secret {secret}: the rotation state needs {size} bytes of annotations, Secret "
            f"Manager allows less than {limit} ({revocations} old keys waiting to be revoked, "
            f"{destructions} versions to be destroyed); a new rotation is refused until the old "
            "keys are revoked (see the runbook: rotation backlog)",
            retryable=False,
        )


def describe(exc: BaseException) -> str:
    """`Type: message` for logs and the last-error annotation. Our errors never carry values."""
    return f"{type(exc).__name__}: {exc}"[:400]
