"""The line an accepted or duplicate delivery logs, written out directly.

Every delivery logs one line; for the two answers Instantly gets on every ordinary delivery
(200, accepted or duplicate) the line is formatted here, from a fixed layout, instead of as a
dict handed to the JSON encoder. It is the same line, key for key and byte for byte, that
`logs.emit_line` and `Logger.log` through our JSON handler write for the fields
`handler._log` builds (a property test holds the three equal); it costs about a third as much,
and under a threaded server the log line was the largest single cost of a delivery
(docs/performance.md). Anything outside that layout answers None, and the caller logs the
ordinary way: a request context with other keys, extra fields other than a message id.
"""

from __future__ import annotations

import functools
import json.encoder
from collections.abc import Mapping
from typing import Any, Final

from instantly_guard.logs import line_time, request_context
from instantly_guard.redaction import hash_email
from instantly_guard.webhook.auth import AuthResult
from instantly_guard.webhook.payload import InstantlyEvent, ParsedEvent

_string: Final = json.encoder.encode_basestring  # the encoder's own, for ensure_ascii=False
_EXTRA_KEYS: Final = frozenset({"message_id"})
# Every key the line can hold: a request context naming one of them would replace its value.
_LINE_KEYS: Final = frozenset(
    {
        *("severity", "message", "time", "logger", "outcome", "status", "latency_ms", "auth"),
        *("client", "body_bytes", "event_type", "event_id", "custom", "workspace"),
        *("campaign_id", "lead", "message_id"),
    }
)


def utf8_clean(value: Any) -> Any:
    """Text that can be encoded as UTF-8 (JSON lets a payload carry lone surrogates)."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _optional(value: str | None) -> str:
    return "null" if value is None else _string(utf8_clean(value))


@functools.lru_cache(maxsize=8)
def _head(name: str, logger_name: str) -> tuple[str, str]:
    """The line's fixed text around its time, up to its latency."""
    return (
        f'{{"severity": "INFO", "message": {_string(f"webhook {name} (200)")}, "time": "',
        f'", "logger": {_string(logger_name)}, "outcome": {_string(name)}, "status": 200, '
        '"latency_ms": ',
    )


@functools.lru_cache(maxsize=256)
def _auth_part(method: str | None, client: str | None) -> str:
    """`, "auth": ..., "client": ...` (a sender uses one method from a few addresses)."""
    auth = f', "auth": {_string(method)}' if method else ""
    return f'{auth}, "client": {_string(client)}' if client else auth


def _type_text(event_type: str) -> str:
    return f', "event_type": {_string(utf8_clean(event_type))}'


def _where_text(custom: bool, workspace: str | None, campaign_id: str | None) -> str:
    """`, "custom": ..., "workspace": ..., "campaign_id": ...`."""
    flag = "true" if custom else "false"
    return (
        f', "custom": {flag}, "workspace": {_optional(workspace)}, '
        f'"campaign_id": {_optional(campaign_id)}'
    )


# A workspace sends a few event types, for one workspace and a few campaigns: their text is
# formatted once. Only short values are kept (an id is 36 characters), so a sender of long ones
# cannot make the caches hold much.
CACHED_TEXT: Final = 128
_type_part: Final = functools.lru_cache(maxsize=256)(_type_text)
_where_part: Final = functools.lru_cache(maxsize=1024)(_where_text)


def _event_parts(event: InstantlyEvent) -> tuple[str, str]:
    event_type, workspace, campaign_id = event.event_type, event.workspace, event.campaign_id
    kind = _type_text(event_type) if len(event_type) > CACHED_TEXT else _type_part(event_type)
    if len(workspace or "") + len(campaign_id or "") > CACHED_TEXT:
        return kind, _where_text(event.custom, workspace, campaign_id)
    return kind, _where_part(event.custom, workspace, campaign_id)


def delivery_line(  # noqa: PLR0917 (the parts of one line)
    name: str,
    latency_ms: float,
    auth: AuthResult,
    body_bytes: int | None,
    parsed: ParsedEvent,
    extra: Mapping[str, Any],
    logger_name: str,
    created: float,
) -> str | None:
    """The INFO line of a 200 answered `name` ("accepted" or "duplicate"), or None when the
    line falls outside the fixed layout (see the module docstring)."""
    context = request_context()
    if not _EXTRA_KEYS.issuperset(extra) or not _LINE_KEYS.isdisjoint(context):
        return None
    event = parsed.event
    start, middle = _head(name, logger_name)
    lead = event.lead_email
    kind, where = _event_parts(event)
    # The event id and the lead's hash are hex we made: nothing in them to escape.
    parts = [
        start,
        line_time(created),
        middle,
        repr(round(latency_ms, 3)),
        _auth_part(auth.method, auth.client),
        "" if body_bytes is None else f', "body_bytes": {body_bytes!r}',
        kind,
        f', "event_id": "{parsed.event_id}"',
        where,
        f', "lead": "{hash_email(utf8_clean(lead))}"' if isinstance(lead, str) else "",
    ]
    for key, value in (*extra.items(), *context.items()):
        if not isinstance(value, str):
            return None
        parts.append(f", {_string(key)}: {_string(value)}")
    parts.append("}")
    return "".join(parts)
