"""One delivery, start to finish: `handle(request, deps) -> Response`.

The order is part of the contract:

1. no usable secret (configuration) ............................. 503, every request, fail closed
2. method other than POST ......................................... 405 with `Allow: POST`
3. credentials / source address (before any byte of the body) ..... 401, one body for every cause
4. Content-Type not JSON .......................................... 415
5. body over the limit (Content-Length, or reading at most limit+1)  413
6. body unreadable, or not a valid event .......................... 400 naming the problem
7. message (canonical data + attributes) over `MAX_MESSAGE_BYTES` . 413 (Pub/Sub would refuse it)
8. duplicate of an event accepted within the window ............... 200 `"duplicate": true`
9. publish, waiting (bounded) for the acknowledgement ............. 503 on failure or timeout
10. ................................................................. 200 `{"received": true, "id": ...}`

Any unexpected error answers 503 (never a 500 with a framework error page): it may have struck
before the hand-off, so Instantly must retry.

Nothing is acknowledged before it is durably handed off (after the response, a function's CPU
is throttled and leftover work may never run), and every request logs exactly one structured line.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, Protocol

from instantly_guard.logs import (
    direct_writer,
    emit_line,
    enter_request_context,
    leave_request_context,
)
from instantly_guard.publish.base import Publisher
from instantly_guard.redaction import hash_email, json_is_clean
from instantly_guard.webhook.auth import AuthResult, Gate, HeaderLookup, Verdict, strip_ows
from instantly_guard.webhook.dedupe import Claim, RecentIds
from instantly_guard.webhook.logline import CACHED_TEXT, delivery_line, utf8_clean
from instantly_guard.webhook.payload import ParsedEvent, PayloadError, parse_event

LOGGER: Final = logging.getLogger("instantly_guard.webhook")
_MAX_ATTRIBUTE_BYTES: Final = 1024  # Pub/Sub's limit on an attribute value
# Pub/Sub refuses a message (data + attribute keys and values) above 10 MB, and a publish request
# above 10 MB; 0.5 MB is left for the request's own framing. A larger message could never be
# published: 503 would make Instantly retry it forever, so it is refused with a final 413.
# `settings.MAX_BODY_LIMIT` keeps every body within this bound; this check is the backstop.
MAX_MESSAGE_BYTES: Final = 9_500_000
_JSON_HEADERS: Final = {"Content-Type": "application/json", "Cache-Control": "no-store"}
_READ_CHUNK: Final = 64 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class RequestLike(Protocol):
    """What the handler needs from a request; a Flask/Werkzeug request fits as is."""

    @property
    def method(self) -> str: ...

    @property
    def headers(self) -> HeaderLookup: ...

    @property
    def remote_addr(self) -> str | None: ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def stream(self) -> Readable: ...


class Response(NamedTuple):  # a tuple: built on every request, several times cheaper
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def _json_response(status: int, document: Mapping[str, Any], **extra: str) -> Response:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Response(status, body, {**_JSON_HEADERS, **extra})


# Fixed bodies: a refused request learns nothing about which check failed.
UNAUTHORIZED: Final = _json_response(401, {"error": "unauthorized"})
UNAVAILABLE: Final = _json_response(503, {"error": "unavailable, retry later"})


def unavailable(headers: Mapping[str, str]) -> Response:
    """The 503 of a receiver that could not be built, with the caller's `Retry-After`."""
    return Response(503, UNAVAILABLE.body, {**UNAVAILABLE.headers, **headers})


METHOD_NOT_ALLOWED: Final = _json_response(405, {"error": "method not allowed"}, Allow="POST")
UNSUPPORTED: Final = _json_response(415, {"error": "unsupported media type: send application/json"})


def _received(event_id: str, *, duplicate: bool = False) -> Response:
    # The id is hex: formatting beats a json.dumps on the hot path.
    tail = ',"duplicate":true}' if duplicate else "}"
    return Response(200, f'{{"received":true,"id":"{event_id}"{tail}'.encode(), _JSON_HEADERS)


def _too_large(limit: int) -> Response:
    return _json_response(413, {"error": f"payload too large (limit {limit} bytes)"})


def _message_too_large(limit: int) -> Response:
    error = f"payload too large once encoded for publishing (limit {limit} bytes)"
    return _json_response(413, {"error": error})


class ProblemLog:
    """Logs each distinct configuration problem once per instance (not once per request)."""

    def __init__(self, logger: logging.Logger = LOGGER, limit: int = 100) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def report(self, problem: str) -> None:
        with self._lock:
            if problem in self._seen or len(self._seen) >= self._limit:
                return
            self._seen.add(problem)
        self._logger.error(
            "webhook receiver is not configured: %s; answering 503 to every request until fixed",
            problem,
            extra={"fields": {"outcome": "configuration_error"}},
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    """Everything `handle` uses, built once per instance (see `receiver.build_receiver`)."""

    gate: Gate
    publisher: Publisher
    recent: RecentIds
    max_body_bytes: int = 256 * 1024
    max_message_bytes: int = MAX_MESSAGE_BYTES
    publish_timeout: float = 10.0
    project: str | None = None
    clock: Callable[[], datetime] = _utc_now
    logger: logging.Logger = LOGGER
    problems: ProblemLog = field(default_factory=ProblemLog)


@dataclass(slots=True, kw_only=True)
class _Handled:
    """What happened to one delivery: the answer and what its log line says."""

    name: str
    response: Response
    auth: AuthResult | None = None
    event: ParsedEvent | None = None
    detail: str | None = None
    body_bytes: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None  # an unexpected one, logged with its (redacted) traceback


def _is_json(content_type: str | None) -> bool:
    if content_type == "application/json":  # what Instantly sends: the rest is for others
        return True
    if not content_type:
        return False
    media, _, params = content_type.partition(";")
    media = strip_ows(media).lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if strip_ows(key).lower() == "charset" and strip_ows(value).strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            return False
    return True


def read_body(stream: Readable, limit: int, declared: int | None = None) -> bytes | None:
    """Read at most `limit + 1` bytes; None when the body is larger than `limit`.

    With a declared length within `limit`, at most that many are asked for and no read is made
    for an end already known: under gunicorn each read goes through several Python layers, and
    the framework's after-request hook then finds the stream at its end without reading.
    """
    chunks: list[bytes] = []
    size = 0
    wanted = limit + 1 if declared is None or declared > limit else declared
    while size < wanted:
        chunk = stream.read(min(_READ_CHUNK, wanted - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        return None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _attribute(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) <= _MAX_ATTRIBUTE_BYTES and text.isascii():
        return text
    encoded = text.encode("utf-8", "replace")
    return encoded[:_MAX_ATTRIBUTE_BYTES].decode("utf-8", "ignore")


def _payload_attributes(
    event_type: str, workspace: str | None, campaign_id: str | None
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, value in (
        ("event_type", event_type),
        ("workspace", workspace),
        ("campaign_id", campaign_id),
    ):
        text = _attribute(value)
        if text:
            pairs.append((key, text))
    return tuple(pairs)


# A workspace sends a few event types for a few campaigns: their attributes are made once, for
# short values only (`logline.CACHED_TEXT`, the log line's same rule).
_cached_payload_attributes: Final = functools.lru_cache(maxsize=1024)(_payload_attributes)


def message_attributes(parsed: ParsedEvent, received_at: datetime) -> dict[str, str]:
    """Pub/Sub attributes: event type, workspace, campaign id, event id, received-at, custom."""
    event = parsed.event
    event_type, workspace, campaign_id = event.event_type, event.workspace, event.campaign_id
    short = len(event_type) + len(workspace or "") + len(campaign_id or "") <= CACHED_TEXT
    made = _cached_payload_attributes if short else _payload_attributes
    # Only these come from the payload; the others are ASCII we made, well under the limit.
    attributes = dict(made(event_type, workspace, campaign_id))
    attributes["event_id"] = parsed.event_id
    if received_at.tzinfo is not UTC:
        received_at = received_at.astimezone(UTC)
    attributes["received_at"] = received_at.isoformat(timespec="milliseconds")
    attributes["custom"] = "true" if event.family == "custom" else "false"
    attributes["source"] = "instantly"
    return attributes


def _process(request: RequestLike, deps: Deps) -> _Handled:
    headers = request.headers
    auth = deps.gate.check(headers, request.remote_addr)
    if auth.verdict is Verdict.UNAVAILABLE:
        deps.problems.report(auth.reason or "no usable webhook secret")
        return _Handled(name="unavailable", response=UNAVAILABLE, auth=auth)
    if request.method.upper() != "POST":
        return _Handled(name="method_not_allowed", response=METHOD_NOT_ALLOWED, auth=auth)
    if not auth.allowed:
        return _Handled(name="unauthorized", response=UNAUTHORIZED, auth=auth)
    if not _is_json(headers.get("content-type")):
        return _Handled(name="unsupported_media_type", response=UNSUPPORTED, auth=auth)
    limit = deps.max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        return _Handled(
            name="too_large", response=_too_large(limit), auth=auth, body_bytes=declared
        )
    try:
        body = read_body(request.stream, limit, declared)
    except Exception as exc:  # the client went away mid-body, or sent a broken chunked encoding
        detail = f"{type(exc).__name__}: {exc}"
        response = _json_response(400, {"error": "could not read the request body"})
        return _Handled(name="unreadable", response=response, auth=auth, detail=detail)
    if body is None:
        return _Handled(name="too_large", response=_too_large(limit), auth=auth)
    try:
        parsed = parse_event(body)
    except PayloadError as exc:
        message = str(exc)
        response = _json_response(400, {"error": "invalid payload", "detail": message})
        return _Handled(
            name="invalid", response=response, auth=auth, detail=message, body_bytes=len(body)
        )
    return _hand_off(parsed, auth, deps, len(body))


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def message_size(data: bytes, attributes: Mapping[str, str]) -> int:
    """The size Pub/Sub counts against its limit: data plus every attribute's key and value."""
    # UTF-8 encodes each code point on its own (a lone surrogate is replaced, never paired with
    # its neighbour), so the joined text is exactly as long as its pieces together.
    return (
        len(data) + _utf8_length("".join(attributes)) + _utf8_length("".join(attributes.values()))
    )


# What the attributes can add to a message at most: eight keys of a few characters and values of
# at most `_MAX_ATTRIBUTE_BYTES` (`message_attributes`). A message whose data leaves this much
# room under the limit is not measured.
_ATTRIBUTES_AT_MOST: Final = 8 * (32 + _MAX_ATTRIBUTE_BYTES)


def _hand_off(parsed: ParsedEvent, auth: AuthResult, deps: Deps, size: int) -> _Handled:
    attributes = message_attributes(parsed, deps.clock())
    if len(parsed.canonical) + _ATTRIBUTES_AT_MOST <= deps.max_message_bytes:
        encoded = 0
    else:
        encoded = message_size(parsed.canonical, attributes)
    if encoded > deps.max_message_bytes:
        response = _message_too_large(deps.max_message_bytes)
        extra: dict[str, Any] = {"message_bytes": encoded}
        return _Handled(
            name="too_large",
            response=response,
            auth=auth,
            event=parsed,
            body_bytes=size,
            fields=extra,
        )
    claim = deps.recent.claim(parsed.event_id, wait=deps.publish_timeout)
    if claim is Claim.DUPLICATE:
        response = _received(parsed.event_id, duplicate=True)
        return _Handled(
            name="duplicate", response=response, auth=auth, event=parsed, body_bytes=size
        )
    ok = False
    try:
        message_id = deps.publisher.publish(parsed.canonical, attributes, deps.publish_timeout)
        ok = True
    except Exception as exc:  # any failure of the hand-off means "not stored": Instantly retries
        detail = f"{type(exc).__name__}: {exc}"
        return _Handled(
            name="publish_failed",
            response=UNAVAILABLE,
            auth=auth,
            event=parsed,
            detail=detail,
            body_bytes=size,
        )
    finally:
        if claim is Claim.OWNED:
            deps.recent.finish(parsed.event_id, accepted=ok)
        elif ok:
            deps.recent.remember(parsed.event_id)
    # The outbox's message id is the event id; Pub/Sub's is worth logging to follow a message.
    fields = {"message_id": message_id} if message_id != parsed.event_id else {}
    return _Handled(
        name="accepted",
        response=_received(parsed.event_id),
        auth=auth,
        event=parsed,
        body_bytes=size,
        fields=fields,
    )


def _log_delivery(outcome: _Handled, latency_ms: float, logger: logging.Logger) -> bool:
    """The line of a 200 written directly (`logline`), when it can be; False when it was not.

    It may wait a moment to share its write with others (`LineWriter.defer`): a refusal or a
    failure, rarer and more urgent, is written at once."""
    if outcome.auth is None or outcome.event is None or outcome.detail or outcome.error:
        return False
    writer = direct_writer(logger, logging.INFO)
    if writer is None:
        return False
    line = delivery_line(
        outcome.name,
        latency_ms,
        outcome.auth,
        outcome.body_bytes,
        outcome.event,
        outcome.fields,
        logger.name,
        time.time(),
    )
    if line is None or not json_is_clean(line):
        return False
    writer.defer(line)
    return True


def _log(outcome: _Handled, latency_ms: float, deps: Deps) -> None:
    status = outcome.response.status
    if status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    else:
        level = logging.INFO
    logger = deps.logger
    if not logger.isEnabledFor(level):
        return
    if status == 200 and _log_delivery(outcome, latency_ms, logger):
        return
    fields: dict[str, Any] = {
        "outcome": outcome.name,
        "status": status,
        "latency_ms": round(latency_ms, 3),
    }
    if outcome.auth is not None:
        if outcome.auth.method:
            fields["auth"] = outcome.auth.method
        if outcome.auth.client:
            fields["client"] = outcome.auth.client
        if outcome.name == "unauthorized" and outcome.auth.reason:
            fields["reason"] = outcome.auth.reason
    if outcome.body_bytes is not None:
        fields["body_bytes"] = outcome.body_bytes
    if outcome.detail:
        fields["detail"] = outcome.detail
    event = outcome.event
    if event is not None:
        fields["event_type"] = utf8_clean(event.event_type)
        fields["event_id"] = event.event_id
        fields["custom"] = event.custom
        fields["workspace"] = utf8_clean(event.event.workspace)
        fields["campaign_id"] = utf8_clean(event.event.campaign_id)
        if isinstance(event.event.lead_email, str):
            fields["lead"] = hash_email(utf8_clean(event.event.lead_email))
    fields.update(outcome.fields)
    error = outcome.error
    message = f"webhook {outcome.name} ({status})"
    # A 200's line may wait to share a write, as on the direct path (`_log_delivery`).
    if error is None and emit_line(logger, level, message, fields, defer=status == 200):
        return
    # Logger.log would also walk the stack for the caller's file and line (which our JSON lines
    # do not carry); the record goes through the logger's filters and handlers all the same.
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    record = logger.makeRecord(
        logger.name,
        level,
        __file__,
        0,
        "webhook %s (%d)",
        (outcome.name, status),
        exc_info,
        "_log",
        {"fields": fields},
    )
    logger.handle(record)


def handle(request: RequestLike, deps: Deps) -> Response:
    """Answer one delivery (see the module docstring for the order of checks)."""
    started = time.perf_counter()
    # Headers are looked up one by one (never copied: Werkzeug builds them from the WSGI environ).
    token = enter_request_context(request.headers.get("x-cloud-trace-context"), deps.project)
    try:
        try:
            outcome = _process(request, deps)
        except Exception as exc:
            outcome = _Handled(
                name="internal_error", response=UNAVAILABLE, detail=type(exc).__name__, error=exc
            )
        _log(outcome, (time.perf_counter() - started) * 1000, deps)
    finally:
        leave_request_context(token)
    return outcome.response
