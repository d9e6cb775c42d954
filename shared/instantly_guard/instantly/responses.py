"""Turning what came back from Instantly (or did not) into a value or an `InstantlyError`.

The one place that maps HTTP statuses to the exception tree of `instantly_guard.errors`:

    401 or 403 whose message is about a scope     -> ScopeError (required, found parsed when
        named: "Invalid scope. Required: X. Found: ...", the same without "Found:", other wording)
    401 otherwise                                 -> AuthenticationError
    403 otherwise                                 -> PermissionDeniedError
    402 -> PaymentRequiredError   404 -> NotFoundError   429 -> RateLimitedError(retry_after)
    5xx -> ServerError            400 and any other 4xx -> InvalidRequestError
    3xx, 1xx and undecodable 2xx bodies           -> UnexpectedResponseError
    no answer (httpx transport error)             -> TransportError

Messages come from the `message` of Instantly's error envelope, passed through the log redactor;
a body that is not the envelope (an HTML page from an edge proxy, an empty body) is described by
its status, content type and size, never quoted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from instantly_guard.errors import (
    AuthenticationError,
    InstantlyError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitedError,
    ScopeError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from instantly_guard.instantly.models import Page
from instantly_guard.instantly.retry import parse_retry_after
from instantly_guard.redaction import redact
from instantly_guard.scopes import OPERATIONS

ModelT = TypeVar("ModelT", bound=BaseModel)

# Where a request id may be found, most specific first (Instantly documents none; its edge is
# Cloudflare, whose ray id is what its support asks for).
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")
# httpx errors raised before any byte of the request was written: the server never saw it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAX_MESSAGE = 500


def request_id(response: httpx.Response) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value: str | None = response.headers.get(name)
        if value:
            return value[:200]
    return None


def _describe_body(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type").split(";")[0].strip()
    size = len(response.content)
    return f"{response.reason_phrase or 'HTTP ' + str(response.status_code)} ({kind}, {size} bytes, not Instantly's JSON error body)"


def error_message(response: httpx.Response) -> str:
    """The `message` of Instantly's error envelope, or a description of a body that is not one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _describe_body(response)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, list):  # validation errors sometimes arrive as a list of strings
        message = "; ".join(str(item) for item in message)
    if not isinstance(message, str) or not message.strip():
        return _describe_body(response)
    return message.strip()[:_MAX_MESSAGE]


def error_from_response(
    response: httpx.Response, *, method: str, path: str, operation: str | None = None
) -> InstantlyError:
    """The exception for a non-2xx answer (see the module doc for the mapping).

    `operation` is the call's `METHOD /template`: when a scope error names no scope, the least
    privileged scope the OpenAPI document lists for it is named instead (and the message says so).
    """
    status = response.status_code
    raw = error_message(response)
    # Parse before redacting: the scope lists must survive exactly as Instantly wrote them.
    scopes = ScopeError.parse(raw) if status in (401, 403) else None
    message = redact(raw)
    common: dict[str, Any] = {"method": method, "path": path, "request_id": request_id(response)}
    if scopes is not None:
        # Never an AuthenticationError: that would make the session refresh the key and a key
        # test call a working key bad (and rotation delete it).
        required, found = scopes
        if not required and operation is not None:
            required = _documented_scope(operation)
            if required:
                message = (
                    f"{message} (Instantly named no scope; the OpenAPI document lists "
                    f"{required[0]} for {operation})"
                )
        return ScopeError(message, status=status, required=required, found=found, **common)
    if status == 401:
        return AuthenticationError(message, status=status, **common)
    if status == 402:
        return PaymentRequiredError(message, status=status, **common)
    if status == 403:
        return PermissionDeniedError(message, status=status, **common)
    if status == 404:
        return NotFoundError(message, status=status, **common)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimitedError(message, status=status, retry_after=retry_after, **common)
    if status >= 500:
        return ServerError(message, status=status, **common)
    if 400 <= status < 500:
        return InvalidRequestError(message, status=status, **common)
    return UnexpectedResponseError(
        f"unexpected status {status}: {message}", status=status, **common
    )


def _documented_scope(operation: str) -> tuple[str, ...]:
    accepted = OPERATIONS.get(operation, ())
    return (str(accepted[0]),) if accepted else ()


def error_from_transport(
    exc: httpx.RequestError, *, method: str, path: str
) -> tuple[TransportError, bool]:
    """The TransportError for an httpx failure, and whether the request may have reached Instantly."""
    sent = not isinstance(exc, _NOT_SENT)
    what = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        message = f"timed out ({what})"
    elif sent:
        message = f"no usable answer ({what})"
    else:
        message = f"could not connect ({what})"
    return TransportError(message, method=method, path=path), sent


def json_body(response: httpx.Response, *, method: str, path: str) -> Any:
    """The decoded JSON of a 2xx answer; UnexpectedResponseError when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnexpectedResponseError(
            f"answer is not JSON: {_describe_body(response)}",
            method=method,
            path=path,
            status=response.status_code,
            request_id=request_id(response),
        ) from exc


def validate(
    model: type[ModelT], data: Any, *, method: str, path: str, response: httpx.Response
) -> ModelT:
    """`model` validated from `data`; UnexpectedResponseError naming the bad fields otherwise.

    The message lists field locations and reasons only: pydantic's own text quotes the input,
    which for a created key is the key itself.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _mismatch(model, exc, method=method, path=path, response=response) from None


def validate_body(
    model: type[ModelT], response: httpx.Response, *, method: str, path: str
) -> ModelT:
    """`json_body` then `validate` in one step: pydantic parses the raw bytes of the answer
    straight into `model` (no intermediate dicts: about half the cost for a 1,000-entry page).
    Same errors as the two-step path: "not JSON" for an undecodable body, the bad fields else."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        if not any(error["type"] == "json_invalid" for error in exc.errors(include_input=False)):
            raise _mismatch(model, exc, method=method, path=path, response=response) from None
    # Not JSON to pydantic: the two-step path decides and words it (outside the `except`, so the
    # ValidationError and the input it holds are not chained to what is raised).
    data = json_body(response, method=method, path=path)
    return validate(model, data, method=method, path=path, response=response)


class _PageEnvelope(BaseModel):
    """A listing's envelope with its items unread: `validate_page` reads them one by one."""

    model_config = ConfigDict(extra="allow")

    items: list[Any]
    next_starting_after: str | None = None


def validate_page(
    model: type[ModelT],
    response: httpx.Response,
    *,
    method: str,
    path: str,
    item: Callable[[Any], ModelT],
) -> Page[ModelT]:
    """One page of `model`s where a bad item does not fail the page: `item(raw)` reads each.

    The whole page is validated in one pass first (what `validate_body` costs); only when that
    fails is each item read by `item`, which decides what a bad one becomes. The envelope itself
    (`items` a list, the cursor a string) stays strict: without it there is no page to read.
    """
    page_model: type[Page[ModelT]] = Page[model]  # type: ignore[valid-type]
    try:
        return page_model.model_validate_json(response.content)
    except ValidationError:
        pass  # not JSON, a bad envelope or a bad item: sorted out below, without the input
    data = json_body(response, method=method, path=path)
    envelope = validate(_PageEnvelope, data, method=method, path=path, response=response)
    return page_model.model_construct(
        items=[item(raw) for raw in envelope.items],
        next_starting_after=envelope.next_starting_after,
    )


def _mismatch(
    model: type[BaseModel],
    exc: ValidationError,
    *,
    method: str,
    path: str,
    response: httpx.Response,
) -> UnexpectedResponseError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<body>'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)[:5]
    )
    # Raised `from None` by the callers: the ValidationError holds the input, a created key
    # included.
    return UnexpectedResponseError(
        f"answer does not match {model.__name__}: {problems}",
        method=method,
        path=path,
        status=response.status_code,
        request_id=request_id(response),
    )
