"""The HTTP engine under `InstantlyClient`: one logical call in, one 2xx answer or one error out.

Per attempt, `Session.send`:
1. waits for the process-wide rate limiter (`ratelimit.py`);
2. builds the `Authorization` header from the key provider's current key right then (the key is
   never stored on the session, never put in a URL, never logged);
3. sends, logs one debug line (method, path, status, attempt, elapsed ms: never a header);
4. maps a failure to the exception tree (`responses.py`) and decides (`retry.py`) whether to
   wait and repeat it.

A bad-key 401 (not a scope 401) makes it call `key_provider(refresh=True)` once and, if that
gives a different key, repeat the request once with it: a rotated key is picked up without a
restart. This refresh does not count against `max_retries`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Final

import httpx

from instantly_guard.errors import (
    AlreadyDeletedError,
    AuthenticationError,
    ConfigError,
    InstantlyError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from instantly_guard.instantly import responses
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.instantly.ratelimit import RateLimiter
from instantly_guard.instantly.retry import RetryPolicy, parse_retry_after, should_retry
from instantly_guard.secret import Secret

_log = logging.getLogger("instantly_guard.instantly")


@dataclass(frozen=True, slots=True)
class Call:
    """One logical API call. `template` is the OpenAPI path (`/api-keys/{id}`), `path` the filled
    one, relative to the base URL. `idempotent`: safe to repeat after Instantly may have acted."""

    method: str
    template: str
    path: str
    params: Mapping[str, str | int] | None = None
    body: Any = None
    idempotent: bool = True

    @property
    def operation(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True, slots=True)
class _Failure:
    error: InstantlyError
    sent: bool = True  # False: the request never left, so Instantly cannot have acted on it
    retry_after: float | None = None
    cause: Exception | None = None


def check_base_url(base_url: str) -> str:
    """`base_url` without a trailing slash; ConfigError unless https (plain http on loopback)."""
    url = httpx.URL(base_url)
    secure = url.scheme == "https" and bool(url.host)
    if url.scheme == "http":
        try:
            secure = url.host == "localhost" or ip_address(url.host).is_loopback
        except ValueError:
            secure = False
    if not secure:
        raise ConfigError(
            f"Instantly base URL must be https:// (plain http only on loopback): {base_url!r}"
        )
    return str(url).rstrip("/")


class Session:
    """Sends `Call`s with auth, rate limiting, retries and refresh-on-401. Thread-safe."""

    def __init__(
        self,
        key_provider: KeyProvider,
        base_url: str,
        *,
        workspace_id: str | None,
        transport: httpx.BaseTransport | None,
        timeout: httpx.Timeout,
        policy: RetryPolicy,
        limiter: RateLimiter,
        sleep: Callable[[float], None],
        user_agent: str,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._key_provider = key_provider
        self._workspace_id = workspace_id
        self.policy = policy
        self.limiter = limiter
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,  # a redirect would carry the bearer key to another URL
        )

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call) -> httpx.Response:
        """The 2xx answer to `call`, after any retries; its InstantlyError otherwise."""
        key = self._key_provider()
        refreshed = False
        acted_maybe = False  # an earlier attempt may have reached Instantly and been carried out
        retries = 0
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(call, key, attempt)
            if isinstance(outcome, httpx.Response):
                return outcome
            error = outcome.error
            if type(error) is AuthenticationError and not refreshed:
                refreshed = True
                fresh = self._key_provider(refresh=True)
                if fresh != key:
                    _log.info("%s %s: key rejected, retrying with a refreshed key", *_line(call))
                    key = fresh
                    continue
            if acted_maybe and call.method == "DELETE" and isinstance(error, NotFoundError):
                raise AlreadyDeletedError(
                    "already gone: an earlier attempt whose answer was lost most likely deleted it",
                    method=call.method,
                    path=call.path,
                    status=error.status,
                    request_id=error.request_id,
                ) from error
            if not should_retry(error, idempotent=call.idempotent, sent=outcome.sent):
                raise _unsafe_to_repeat(error, call, outcome.sent) from outcome.cause
            delay = self.policy.delay(retries, error, outcome.retry_after)
            if retries >= self.policy.max_retries or delay is None:
                raise error from outcome.cause
            if outcome.sent and isinstance(error, ServerError | TransportError):
                acted_maybe = True
            if isinstance(error, RateLimitedError):
                # The budget is the workspace's: hold back every thread of the process, too.
                self.limiter.pause(delay)
            retries += 1
            _log.info(
                "%s %s failed (%s); retry %d of %d in %.2f s",
                *_line(call),
                error.status or type(error).__name__,
                retries,
                self.policy.max_retries,
                delay,
                extra={"fields": {"operation": call.operation, "retry": retries, "delay_s": delay}},
            )
            self._sleep(delay)

    def _attempt(self, call: Call, key: Secret, attempt: int) -> httpx.Response | _Failure:
        self.limiter.acquire()
        started = time.perf_counter()
        try:
            response = self._http.send(self._request(call, key))
        except httpx.RequestError as exc:
            error, sent = responses.error_from_transport(exc, method=call.method, path=call.path)
            _log_attempt(call, type(exc).__name__, attempt, started)
            return _Failure(error, sent=sent, cause=exc)
        _log_attempt(call, response.status_code, attempt, started)
        # httpx binds a response and its stream to each other, a reference cycle, so a body it
        # has read waits for the cyclic collector (gen 2, rarely run): a long export would hold
        # hundreds of ~400 KB audit pages. A plain stream of the bytes read (what httpx itself
        # does for a request) frees the body as soon as the caller drops the response.
        response.stream = httpx.ByteStream(response.content)
        if response.is_success:
            return response
        return _Failure(
            responses.error_from_response(
                response, method=call.method, path=call.path, operation=call.operation
            ),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def _request(self, call: Call, key: Secret) -> httpx.Request:
        # The header is built here, per attempt, and lives only in this request object; httpx
        # masks it in Headers' repr and logs neither headers nor bodies.
        headers = {"Authorization": f"Bearer {key.reveal()}"}
        if self._workspace_id:
            headers["x-as-workspace"] = self._workspace_id
        return self._http.build_request(
            call.method, call.path, params=call.params, json=call.body, headers=headers
        )


def _line(call: Call) -> tuple[str, str]:
    return call.method, call.path


def _log_attempt(call: Call, outcome: int | str, attempt: int, started: float) -> None:
    if not _log.isEnabledFor(logging.DEBUG):
        return
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    _log.debug(
        "%s %s -> %s (attempt %d, %.1f ms)",
        *_line(call),
        outcome,
        attempt,
        elapsed_ms,
        extra={
            "fields": {
                "method": call.method,
                "path": call.path,
                "status": outcome if isinstance(outcome, int) else None,
                "failure": outcome if isinstance(outcome, str) else None,
                "attempt": attempt,
                "elapsed_ms": elapsed_ms,
            }
        },
    )


_KEY_NOTE: Final = (
    "the key may have been created; not retried (a second create would orphan a key): "
    "list keys by name before creating another"
)


def _unsafe_to_repeat(error: InstantlyError, call: Call, sent: bool) -> InstantlyError:
    """`error` itself, or, for a call that is not safe to repeat and may have been carried out, a
    copy whose message tells the caller so (and, for a key, how to find out)."""
    if call.idempotent or not sent or not isinstance(error, ServerError | TransportError):
        return error
    if call.operation == "POST /api-keys":
        note = _KEY_NOTE
    else:
        note = (
            f"the change may have been made; not retried ({call.operation} is not safe to repeat)"
        )
    return type(error)(
        f"{error.message}; {note}",
        method=error.method,
        path=error.path,
        status=error.status,
        request_id=error.request_id,
    )
