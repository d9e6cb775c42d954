"""Request checks that answer 400 with the messages Instantly's server (Fastify + Ajv) writes.

`body must have required property 'name'`, `querystring/limit must be <= 100`,
`params/id must match format "uuid"`: the real API validates against the same OpenAPI schemas,
so a client sees the same kind of message here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from instantly_sandbox.errors import ApiError, bad_request
from instantly_sandbox.ids import to_ms

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_TRUE_FALSE = {"true": True, "false": False}


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and bool(_UUID.match(value))


def uuid_param(params: Mapping[str, str], name: str = "id") -> str:
    value = params[name]
    if not is_uuid(value):
        raise bad_request(f'params/{name} must match format "uuid"')
    return value.lower()


def object_body(
    body: Any, *, allowed: Collection[str], required: Iterable[str] = (), min_properties: int = 0
) -> dict[str, Any]:
    """The body as a dict, with required, additional and minimum property checks."""
    if not isinstance(body, dict):
        raise bad_request("body must be object")
    for name in required:
        if name not in body:
            raise bad_request(f"body must have required property '{name}'")
    for name in body:
        if name not in allowed:
            raise bad_request("body must NOT have additional properties")
    if len(body) < min_properties:
        raise bad_request(f"body must NOT have fewer than {min_properties} properties")
    return body


def string_field(body: Mapping[str, Any], name: str, *, nullable: bool = False) -> str | None:
    value = body.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise bad_request(f"body/{name} must be string" + (",null" if nullable else ""))
    return value


def enum_field(body: Mapping[str, Any], name: str, allowed: Collection[str | None]) -> str | None:
    value = body.get(name)
    if value not in allowed:
        raise bad_request(f"body/{name} must be equal to one of the allowed values")
    return value


def query_int(query: Mapping[str, str], name: str, *, minimum: int, maximum: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"querystring/{name} must be integer") from None
    if value < minimum:
        raise bad_request(f"querystring/{name} must be >= {minimum}")
    if value > maximum:
        raise bad_request(f"querystring/{name} must be <= {maximum}")
    return value


def query_number(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise bad_request(f"querystring/{name} must be number") from None


def query_bool(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in _TRUE_FALSE:
        raise bad_request(f"querystring/{name} must be boolean")
    return _TRUE_FALSE[raw]


def query_day_bound(
    query: Mapping[str, str],
    name: str,
    *,
    end: bool,
    utc_offset: timedelta = timedelta(0),
    end_exclusive: bool = False,
) -> int | None:
    """A date filter as Unix ms (an inclusive bound). A bare day is a day at `utc_offset` (the
    timezone the API reads dates in; default UTC): `start_date` from its first millisecond,
    `end_date` to its last, or, with `end_exclusive`, to the last millisecond before it. A full
    ISO date-time is taken as the exact instant."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        day = None
    if day is not None:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - utc_offset
        if not end:
            return to_ms(start)
        return to_ms(start if end_exclusive else start + timedelta(days=1)) - 1
    try:
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"querystring/{name} must be a valid date") from None
    return to_ms(instant)
