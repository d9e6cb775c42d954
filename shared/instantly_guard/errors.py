"""The one exception tree of instantly-guard.

    GuardError                      root: catch this to catch everything we raise
    ├── ConfigError                 bad or missing configuration (lists every problem at once)
    │   ├── scopes.errors.ScopeParseError          a scope string that is not `resource:action`
    │   └── scopes.errors.UnknownOperationError    an operation the OpenAPI document lacks
    ├── BackendError                a Google Cloud or local backend failed (retryable or not)
    │   ├── ConflictError           a compare-and-swap lost (etag / generation precondition)
    │   ├── publish.base.PublishError              a message was not acknowledged as stored
    │   ├── secrets.base.SecretNotFoundError       no such secret, version or alias
    │   ├── secrets.base.VersionUnavailableError   the version is disabled or destroyed
    │   └── audit.service.KeyUnavailableError      the exporter's key cannot be read
    ├── InstantlyError              a call to Instantly's API failed
    │   ├── AuthenticationError     401: missing, invalid or revoked key
    │   ├── ScopeError              401 or 403 about a scope (with or without `Found:`)
    │   ├── PaymentRequiredError    402: the workspace has no paid plan
    │   ├── PermissionDeniedError   403 that is not about scopes
    │   ├── NotFoundError           404
    │   │   └── AlreadyDeletedError 404 on a retried DELETE whose earlier attempt may have done it
    │   ├── InvalidRequestError     400 (and other 4xx we do not single out)
    │   ├── RateLimitedError        429
    │   ├── ServerError             5xx
    │   ├── TransportError          no HTTP answer: connect error, timeout, dropped connection
    │   └── UnexpectedResponseError an answer we cannot use: not JSON, wrong shape, cursor loop
    ├── rotation.errors.RotationError               a rotation could not complete (`retryable`)
    │   ├── rotation.errors.RotationBusyError       another delivery holds the lease
    │   ├── rotation.errors.KeyTestError            the new key failed its test
    │   └── rotation.errors.RotationStateFullError  the state would not fit the annotation limit
    ├── lazy.BuildFailedError                       a function's collaborators could not be built
    ├── webhook.secrets.SecretFormatError           a webhook-secret payload breaks the format
    ├── webhook.secrets.SecretUnavailableError      no usable webhook secret right now
    ├── webhook.payload.PayloadError                a webhook body that is not an event
    ├── check.gitrepo.RepositoryUnreadableError     not a git work tree, or git is missing
    ├── check.collect.WorkspaceUnreadableError      no workspace section could be read (`retryable`)
    └── localstack.processes.StackError             the local stack could not start

`SecretFormatError` and `PayloadError` are also `ValueError`s. Google's own errors are classified
as transient or not in one place, `google_errors.is_transient`, and reach callers as a
`BackendError` whose `retryable` says so. Private exceptions that only carry control flow inside
one module (`_StopRunError`, ...) are not errors and are not drawn. `tests/unit/test_error_tree.py`
walks every class in the package and holds this drawing to it.

Every InstantlyError carries the HTTP method, the path (never the query string, never a header),
the status (None when there was no answer) and whether repeating the call can help. None carries
the API key: messages are built from Instantly's error text and the request line only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A scope message names scopes as `resource:action` (resources hold letters, digits, `_` and
# `-`: `background-jobs:read`). `Found:` starts the list of what the key holds, when given.
_SCOPE_TOKEN = re.compile(r"(?<![\w-])[a-z][a-z0-9_-]*:(?:all|create|read|update|delete)(?![\w-])")
_SCOPE_WORD = re.compile(r"\bscopes?\b", re.IGNORECASE)
_FOUND = re.compile(r"\bfound\s*:", re.IGNORECASE)


class GuardError(Exception):
    """Root of every error instantly-guard raises on purpose."""


class ConfigError(GuardError):
    """Configuration is missing or invalid. `problems` lists each one; the message joins them."""

    def __init__(self, problems: Iterable[str] | str) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("invalid configuration: " + "; ".join(self.problems))


class BackendError(GuardError):
    """A storage, messaging or logging backend failed. `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)


class ConflictError(BackendError):
    """A compare-and-swap lost: somebody else changed the object since we read it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class InstantlyError(GuardError):
    """A call to Instantly's API failed."""

    retryable_by_default = False

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        retryable: bool | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.retryable = self.retryable_by_default if retryable is None else retryable
        self.request_id = request_id
        where = f"{method} {path}"
        code = f" -> {status}" if status is not None else ""
        super().__init__(f"{where}{code}: {message}")


class AuthenticationError(InstantlyError):
    """401: the key is missing, invalid or revoked. A key provider refresh may help once."""


class ScopeError(InstantlyError):
    """The key lacks a scope. `required` and `found` are parsed from Instantly's message."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        required: tuple[str, ...] = (),
        found: tuple[str, ...] = (),
        request_id: str | None = None,
    ) -> None:
        self.required = required
        self.found = found
        super().__init__(
            message,
            method=method,
            path=path,
            status=status,
            retryable=False,
            request_id=request_id,
        )

    @staticmethod
    def parse(message: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(required, found) when `message` is about a missing scope, None otherwise.

        Instantly's wording is not documented and varies: real calls answer
        `Invalid scope. Required: a:b. Found: c:d, e:f`, public reports show the same without
        `Found:`, and the documented 403 may word it otherwise. So any message that mentions a
        scope is a scope message; the scopes named before `Found:` are the required ones, those
        after it what the key holds. Either tuple may be empty (a message naming no scope).
        """
        text = message.strip()
        if not _SCOPE_WORD.search(text):
            return None
        found_at = _FOUND.search(text)
        head, tail = (
            (text, "") if found_at is None else (text[: found_at.start()], text[found_at.end() :])
        )
        return _scope_tokens(head), _scope_tokens(tail)


def _scope_tokens(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_SCOPE_TOKEN.findall(text)))


class PaymentRequiredError(InstantlyError):
    """402: the workspace has no paid plan; no retry helps."""


class PermissionDeniedError(InstantlyError):
    """403 that is not about scopes (e.g. a sub-workspace the key cannot act on)."""


class NotFoundError(InstantlyError):
    """404: the resource does not exist (or no longer does)."""


class AlreadyDeletedError(NotFoundError):
    """404 on a retry of a DELETE whose earlier attempt got no usable answer.

    The earlier attempt most likely deleted the resource and its response was lost, so the
    resource is gone, which is what the caller asked for; only the deleted object's body is
    unavailable. Callers that treat "gone" as success catch this (or NotFoundError).
    """


class InvalidRequestError(InstantlyError):
    """400 and unclassified 4xx: the request itself is wrong; repeating it cannot help."""


class RateLimitedError(InstantlyError):
    """429: over the workspace's rate limit. `retry_after` is in seconds when the server said."""

    retryable_by_default = True

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = 429,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, method=method, path=path, status=status, request_id=request_id)


class ServerError(InstantlyError):
    """5xx: Instantly failed; a later attempt may succeed."""

    retryable_by_default = True


class TransportError(InstantlyError):
    """No usable HTTP answer: connection refused, timeout, connection dropped mid-response.

    For a non-idempotent call the change may or may not have been made.
    """

    retryable_by_default = True


class UnexpectedResponseError(InstantlyError):
    """Instantly answered, but not in a shape we can use: a body that is not JSON, JSON that does not
    match the documented schema, an unexpected status, or a pagination cursor that repeats.
    Repeating the call is not expected to help."""
