"""Building a function's collaborators once per instance, on first use: `Lazy`.

Every function (`functions/*/main.py`) holds its collaborators in one `Lazy`, so all of them fail
the same way (docs/lazy-build.md):

- Nothing is built at import time; the first call of `get()` builds, under a lock, and every
  later call returns what was built. A build that succeeded is never redone.
- A failed build is never kept: a configuration error and a transient error alike (a fixed
  configuration arrives as a new revision, but a secret file mounted late or a dependency down
  at cold start clears by itself). Calls within `retry_seconds` of a failure raise
  `BuildFailedError` at once, without building (a failing dependency is not hammered once per
  request); the first call after that builds again.
- Each distinct failure is logged once per instance, at ERROR, with its kind and a secret-free
  reason; a recovery is logged once at INFO.

What a caller does with `BuildFailedError`: an HTTP function answers 503 with
`Retry-After: retry_after` (`unavailable_headers`); the rotation function lets it propagate so
Pub/Sub redelivers with backoff (and dead-letters an error that never clears); the scheduled check
skips the run, and the next export tries again.

Logging is configured once per process, before the first build, from `LOG_LEVEL`
(`logs.configure_logging_once`), so the build's own errors leave as JSON lines too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from instantly_guard.errors import (
    AuthenticationError,
    ConfigError,
    GuardError,
    PaymentRequiredError,
    ScopeError,
)
from instantly_guard.logs import configure_logging_once
from instantly_guard.redaction import redact

T = TypeVar("T")

#: How long after a failed build the next call builds again.
BUILD_RETRY_SECONDS: Final = 5.0
_MAX_REASON_CHARS: Final = 300
_log = logging.getLogger("instantly_guard.lazy")


class BuildFailedError(GuardError):
    """The collaborators of this instance could not be built; a later attempt may succeed.

    `kind` is `config` for a `ConfigError` (whose `problems` it carries) and `error` otherwise;
    `reason` is one secret-free line; `retry_after` is how many seconds remain before the next
    attempt.
    """

    retryable = True

    def __init__(
        self,
        what: str,
        kind: str,
        reason: str,
        retry_after: float,
        problems: tuple[str, ...] = (),
    ) -> None:
        self.what, self.kind, self.reason, self.retry_after = what, kind, reason, retry_after
        self.problems = problems
        super().__init__(f"{what} could not be built ({kind}): {reason}")


@dataclass(frozen=True, slots=True)
class Response:
    """What an HTTP function answers: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def classify_run_error(error: GuardError, *, key: str, needs: str) -> tuple[bool, str, str]:
    """(permanent, kind, what to do) for the error that ended a scheduled run: 500 when a person
    must act, 503 when a later run may succeed. `key` names whose Instantly key it is ("the
    reconciler's"), `needs` the scopes it must hold."""
    if isinstance(error, ScopeError):
        return (
            True,
            "missing_scope",
            f"{key} Instantly key lacks a scope ({error}); it needs {needs}",
        )
    if isinstance(error, AuthenticationError):
        return True, "invalid_key", f"Instantly rejected {key} key (invalid or revoked)"
    if isinstance(error, PaymentRequiredError):
        return True, "no_paid_plan", "the Instantly workspace has no active paid plan"
    if isinstance(error, ConfigError):
        return True, "config", str(error)
    retryable = bool(getattr(error, "retryable", True))
    return not retryable, "unavailable" if retryable else "rejected", str(error)


def describe_build_error(exc: BaseException) -> str:
    """A one-line, secret-free description: the type, and the module for a failed import."""
    if isinstance(exc, ImportError):
        what = f"module {exc.name!r} is missing" if exc.name else redact(str(exc))
    else:
        what = redact(str(exc))
    text = f"{type(exc).__name__}: {what}" if what else type(exc).__name__
    return " ".join(text.split())[:_MAX_REASON_CHARS]


def unavailable_headers(error: BuildFailedError) -> dict[str, str]:
    """The headers of a 503 answered because the build failed."""
    return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}


class Lazy(Generic[T]):
    """`build()` once, on the first `get()`; a failed build is retried (see the module doc)."""

    def __init__(
        self,
        build: Callable[[], T],
        *,
        what: str,
        env: Callable[[], Mapping[str, str]] | None = None,
        retry_seconds: float = BUILD_RETRY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        logger: logging.Logger = _log,
    ) -> None:
        self._build = build
        self._what = what
        self._env = env
        self._retry_seconds = retry_seconds
        self._monotonic = monotonic
        self._logger = logger
        self._lock = threading.Lock()
        self._box: tuple[T] | None = None  # (value,) once built
        self._failure: BuildFailedError | None = None
        self._retry_at = 0.0
        self._logged: set[str] = set()

    @property
    def built(self) -> bool:
        return self._ready() is not None

    def _ready(self) -> tuple[T] | None:
        return self._box

    def get(self) -> T:
        box = self._ready()
        if box is not None:  # the hot path: no lock once built
            return box[0]
        # The first build is waited for; a rebuild is done by one call while the others fail
        # fast with the earlier failure rather than queue behind it.
        if not self._lock.acquire(blocking=self._failure is None):
            raise self._still_failing()
        try:
            box = self._ready()
            if box is not None:
                return box[0]
            if self._failure is not None and self._monotonic() < self._retry_at:
                raise self._still_failing()
            if self._env is not None:
                configure_logging_once(self._env())
            try:
                value = self._build()
            except Exception as exc:
                raise self._failed(exc) from exc
            if self._failure is not None:
                self._logger.info(
                    "%s built after an earlier failure",
                    self._what,
                    extra={"fields": {"outcome": "recovered", "build": self._what}},
                )
            self._box, self._failure = (value,), None
            return value
        finally:
            self._lock.release()

    def _still_failing(self) -> BuildFailedError:
        failure = self._failure
        if failure is None:  # cleared by the call that holds the lock and is building
            return BuildFailedError(self._what, "error", "being built", self._retry_seconds)
        remaining = max(0.0, self._retry_at - self._monotonic())
        return BuildFailedError(
            failure.what, failure.kind, failure.reason, remaining, failure.problems
        )

    def _failed(self, exc: Exception) -> BuildFailedError:
        if isinstance(exc, ConfigError):
            kind, reason = "config", redact(str(exc))
            problems = tuple(redact(problem) for problem in exc.problems)
        else:
            kind, reason, problems = "error", describe_build_error(exc), ()
        self._retry_at = self._monotonic() + self._retry_seconds
        self._failure = BuildFailedError(self._what, kind, reason, self._retry_seconds, problems)
        if reason not in self._logged and len(self._logged) < 100:
            self._logged.add(reason)
            self._logger.error(
                "%s could not be built: %s; answering unavailable, next attempt in %gs",
                self._what,
                reason,
                self._retry_seconds,
                extra={"fields": {"outcome": "build_failed", "build": self._what, "kind": kind}},
            )
        return self._failure

    def reset(self) -> T | None:
        """Forget what was built (tests, orderly shutdown) and return it for closing."""
        with self._lock:
            box, self._box, self._failure = self._box, None, None
        return box[0] if box is not None else None
