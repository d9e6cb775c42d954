"""Structured logs in the shape Cloud Logging reads from a function's stdout.

One JSON object per line: `severity`, `message`, `time`, the trace of the current request
(`logging.googleapis.com/trace`, from `X-Cloud-Trace-Context`), `logging.googleapis.com/labels`,
and any structured fields passed as `extra={"fields": {...}}`. Every string that leaves through
this formatter, message, fields and tracebacks alike, goes through `redaction.redact` first.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from instantly_guard.jsontext import encoder
from instantly_guard.linewriter import LineWriter
from instantly_guard.redaction import json_is_clean, redact
from instantly_guard.terminal import safe

_TRACE_KEY: Final = "logging.googleapis.com/trace"
_SPAN_KEY: Final = "logging.googleapis.com/spanId"
_LABELS_KEY: Final = "logging.googleapis.com/labels"
_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "instantly_guard_log_context", default=None
)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        # Keys too: a mapping keyed by value (headers by secret, counts by lead email) is possible.
        return {redact(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is logged by its str(); a Secret prints as Secret('***').
    return redact(str(value))


def _plain(value: Any) -> Any:
    """json.dumps' fallback for what it cannot encode, converting as `_scrub` does."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


_encode: Final = encoder(ensure_ascii=False, default=_plain)
_BASE_KEYS: Final = frozenset({"severity", "message", "time", "logger"})
# The last second `line_time` formatted: (whole seconds, text up to the seconds).
_second: tuple[float, str] = (-1.0, "")


def line_time(created: float) -> str:
    """`datetime.fromtimestamp(created, UTC).isoformat()`, the date and time of day formatted
    once a second (a test holds the two equal): rounded half to even to the microsecond, as
    `fromtimestamp` rounds, and no fraction when it is zero, as `isoformat` writes."""
    global _second  # a cache swapped whole: readers see an old or a new one
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    cached = _second
    if cached[0] != whole:
        text = datetime.fromtimestamp(whole, UTC).isoformat()[:-6]  # less "+00:00"
        cached = _second = (whole, text)
    if micro:
        return f"{cached[1]}.{micro:06d}+00:00"
    return f"{cached[1]}+00:00"


def _message(record: logging.LogRecord) -> str:
    """The record's message, prefixed with the secret it is about when a `secret` field names one
    the text does not (so the one-line summary Cloud Logging and a terminal show names it)."""
    return _named(record.getMessage(), getattr(record, "fields", None))


def _named(message: str, fields: Any) -> str:
    secret = fields.get("secret") if isinstance(fields, Mapping) else None
    if isinstance(secret, str) and secret and secret not in message:
        return f"{secret}: {message}"
    return message


def _is_str(key: object) -> bool:
    return type(key) is str


def _entry(  # noqa: PLR0917 (the parts of one line)
    severity: str,
    message: str,
    created: float,
    name: str,
    fields: Any,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "severity": severity,
        "message": message,
        "time": line_time(created),
        "logger": name,
    }
    if isinstance(fields, dict) and _BASE_KEYS.isdisjoint(fields) and all(map(_is_str, fields)):
        entry.update(fields)  # the usual fields: string keys, none a base key
    elif isinstance(fields, Mapping):
        for key, value in fields.items():
            entry.setdefault(str(key), value)
    context = _context.get()
    if context:
        entry.update(context)
    if labels:
        entry[_LABELS_KEY] = labels
    return entry


def _clean_line(entry: Mapping[str, Any]) -> str | None:
    """The entry encoded, when the encoded line holds nothing to mask (checked once, on the whole
    line); None when it may, or cannot be encoded as it is."""
    try:
        line = _encode(entry)
    except (TypeError, ValueError, RecursionError):  # keys json cannot encode, circular values
        return None
    return line if json_is_clean(line) else None


class JsonFormatter(logging.Formatter):
    """Formats a record as one redacted JSON line for Cloud Logging."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._labels = dict(labels or {})

    @property
    def labels(self) -> Mapping[str, str]:
        return self._labels

    def format(self, record: logging.LogRecord) -> str:
        labels = {**self._labels, **(getattr(record, "labels", None) or {})}
        entry = _entry(
            _SEVERITY.get(record.levelno, "DEFAULT"),
            _message(record),
            record.created,
            record.name,
            getattr(record, "fields", None),
            labels,
        )
        if record.exc_info and record.exc_info[0] is not None:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        # Most lines hold nothing to mask: only when the line may hold something is every string
        # scrubbed (keys included) and the entry encoded again.
        line = _clean_line(entry)
        if line is not None:
            return line
        return json.dumps(_scrub(entry), ensure_ascii=False, default=str)


def _only_our_json_handler(
    logger: logging.Logger, level: int
) -> tuple[LineWriter, JsonFormatter] | None:
    """The line writer and formatter of our JSON handler, when that handler is the only thing a
    record of `logger` at `level` would reach: no handler or filter on the way up, the root's
    single handler ours (`configure_logging`'s), unfiltered."""
    if logger.disabled or logger.filters:
        return None
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:  # up to the root
        if node.handlers or node.filters or not node.propagate or node.disabled:
            return None
        node = node.parent
    root = logging.getLogger()
    if node is not root or root.filters or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    formatter = handler.formatter
    if (
        not isinstance(handler, _LineHandler)
        or handler.filters
        or level < handler.level
        or not isinstance(formatter, JsonFormatter)
        or type(formatter) is not JsonFormatter  # a subclass may format otherwise
    ):
        return None
    return handler.lines, formatter


def direct_writer(logger: logging.Logger, level: int) -> LineWriter | None:
    """The writer a caller may write a line of `logger` at `level` to itself, formatted as our
    JSON handler would (with no labels to add, and `line_time` and `request_context` for its
    time and context): None unless that handler is the only thing such a record would reach."""
    ours = _only_our_json_handler(logger, level)
    if ours is None or ours[1].labels or not logger.isEnabledFor(level):
        return None
    return ours[0]


def emit_line(
    logger: logging.Logger,
    level: int,
    message: str,
    fields: Mapping[str, Any],
    *,
    defer: bool = False,
) -> bool:
    """Write the JSON line `logger.log(level, message, extra={"fields": fields})` would write,
    without building a LogRecord; False (nothing written) unless the only receiver is the stdout
    handler `configure_logging` installed and the line holds nothing to mask.

    For a line written on every request: the record's machinery (LogRecord, the handler chain)
    cost as much as the rest of the webhook's log line. The caller logs the ordinary way when
    this answers False, so a test's handler, a filter, or a value to redact see the same record.
    With `defer`, the line may wait up to `linewriter.LINGER` seconds to share a write with
    others (`LineWriter.defer`), still before any line logged after it.
    """
    ours = _only_our_json_handler(logger, level)
    if ours is None or not logger.isEnabledFor(level):
        return False
    writer, formatter = ours
    severity = _SEVERITY.get(level, "DEFAULT")
    named = _named(message, fields)
    entry = _entry(severity, named, time.time(), logger.name, fields, formatter.labels)
    line = _clean_line(entry)
    if line is None:
        return False
    if defer:
        writer.defer(line)
    else:
        writer.write(line)
    return True


class TextFormatter(logging.Formatter):
    """One readable, redacted line per record for a terminal: `12:00:01 WARNING name: message
    key=value ...` (the structured fields after the message)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        line = f"{when} {_SEVERITY.get(record.levelno, 'DEFAULT'):<7} {record.name}: "
        line += safe(_message(record))  # a message may quote what a workspace chose
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping) and fields:
            line += "  " + " ".join(f"{safe(k)}={safe(v)}" for k, v in fields.items())
        if record.exc_info and record.exc_info[0] is not None:
            trace = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            line += "\n" + "\n".join(safe(part) for part in trace.split("\n"))
        return str(_scrub(line))


class _LineHandler(logging.StreamHandler[IO[str]]):
    """A stream handler whose lines go out through a `LineWriter`: after any line deferred before
    them, and with no lock held across the write."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self.lines = LineWriter(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # as StreamHandler.emit does: report on stderr, never fail the caller
            self.handleError(record)
            return
        self.lines.write(line)


QUIET_LOGGERS: Final = ("httpx", "httpcore", "urllib3", "google.auth", "grpc")
"""Libraries that log every request at INFO (httpx with the full URL): WARNING and up only."""


def configure_logging(
    level: str = "INFO",
    *,
    stream: IO[str] | None = None,
    labels: Mapping[str, str] | None = None,
    text: bool | None = None,
) -> None:
    """Route the root logger to `stream` (stdout by default): one JSON line per record for Cloud
    Logging, or, when `text` is true (default: when `stream` is a terminal), one readable line.

    Idempotent: calling it again replaces our handler instead of adding a second one. The
    libraries in QUIET_LOGGERS are held at WARNING whatever `level` is.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_instantly_guard", False):
            root.removeHandler(handler)
            if isinstance(handler, _LineHandler):
                handler.lines.flush()  # the lines it held back go where they were logged to
    out = stream or sys.stdout
    if text is None:
        isatty = getattr(out, "isatty", None)
        text = bool(isatty and isatty())
    handler = _LineHandler(out)
    handler.setFormatter(TextFormatter() if text else JsonFormatter(labels))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    handler._instantly_guard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


_LEVELS: Final = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})
_once_lock = threading.Lock()


def configure_logging_once(env: Mapping[str, str]) -> None:
    """`configure_logging` at `LOG_LEVEL` (INFO when unset or not a level: the settings report
    that as a configuration problem), unless our handler is already installed: every function
    configures logging here, once per process, before it builds anything."""
    with _once_lock:
        if any(getattr(h, "_instantly_guard", False) for h in logging.getLogger().handlers):
            return
        level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
        configure_logging(level if level in _LEVELS else "INFO")


_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def trace_fields(trace_header: str | None, project: str | None) -> dict[str, str]:
    """Cloud Logging's trace fields from `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`."""
    if not trace_header or not project:
        return {}
    trace_id, _, rest = trace_header.partition("/")
    trace_id = trace_id.strip()
    # Cloud Run sends the header on every request: a set test, not a generator per character.
    if not trace_id or not _HEX_DIGITS.issuperset(trace_id):
        return {}
    fields = {_TRACE_KEY: f"projects/{project}/traces/{trace_id}"}
    span = rest.split(";", 1)[0].strip()
    if span.isdigit():
        fields[_SPAN_KEY] = span
    return fields


@contextlib.contextmanager
def bind_request_context(
    trace_header: str | None = None, project: str | None = None, **extra: str
) -> Iterator[None]:
    """Attach the request's trace (and any extra fields) to every record logged inside the block."""
    token = enter_request_context(trace_header, project, **extra)
    try:
        yield
    finally:
        leave_request_context(token)


RequestContext = contextvars.Token[dict[str, str] | None]


def enter_request_context(
    trace_header: str | None = None, project: str | None = None, **extra: str
) -> RequestContext:
    """`bind_request_context` without the generator, for a caller on every request: pass the
    token to `leave_request_context` in a `finally`."""
    return _context.set({**trace_fields(trace_header, project), **extra})


def leave_request_context(token: RequestContext) -> None:
    _context.reset(token)


def flush_lines() -> None:
    """Write every line our handler holds back (`emit_line(..., defer=True)`) now."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LineHandler):
            handler.lines.flush()


def request_context() -> Mapping[str, str]:
    """The fields every line logged now carries (the request's trace), in their order."""
    return _context.get() or {}
