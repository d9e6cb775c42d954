"""The API pipeline, in the order the real service applies it:

route -> rate limit (429) -> armed fault -> bearer key (401) -> `x-as-workspace` (403) ->
paid plan (402) -> scope (401 `Invalid scope...`) -> body parsing (400/415) -> handler.

Routing prefers static paths over parametric ones (`/webhooks/event-types` before
`/webhooks/{id}`), as Fastify does. A documented operation the sandbox does not implement still
gets authentication and scope checks, then 501. An undocumented path gets Fastify's 404.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from instantly_sandbox.access import OPERATIONS, missing_scope
from instantly_sandbox.api import ApiRequest, Route, template_pattern
from instantly_sandbox.errors import ApiError
from instantly_sandbox.faults import Fault, Faults
from instantly_sandbox.ratelimit import RateLimiter
from instantly_sandbox.recorder import ResponseLog
from instantly_sandbox.routes import ROUTES
from instantly_sandbox.state import ApiKeyRecord, Workspace
from instantly_sandbox.variants import Variants
from instantly_sandbox.wire import HttpRequest, Outcome, error

BASE_PATH = "/api/v2"
_BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class _Entry:
    method: str
    template: str
    pattern: re.Pattern[str]
    route: Route | None  # None: documented but not implemented here

    @property
    def operation(self) -> str:
        return f"{self.method} {self.template}"


class Router:
    """Matches `METHOD /path` (without the base) to a route or a documented operation."""

    def __init__(self, routes: Iterable[Route], documented: Iterable[str]) -> None:
        implemented = {route.operation: route for route in routes}
        entries = [
            _Entry(route.method, route.template, route.pattern, route)
            for route in implemented.values()
        ]
        for operation in documented:
            if operation not in implemented:
                method, template = operation.split(" ", 1)
                entries.append(_Entry(method, template, template_pattern(template), None))
        entries.sort(key=lambda entry: (entry.template.count("{"), entry.template))
        self._entries = entries

    def match(self, method: str, path: str) -> tuple[_Entry, dict[str, str]] | None:
        for entry in self._entries:
            if entry.method == method:
                found = entry.pattern.match(path)
                if found:
                    return entry, found.groupdict()
        return None


ROUTER = Router(ROUTES, OPERATIONS)

REAL_NOT_IMPLEMENTED: Final = frozenset(
    {"GET /webhooks/event-types", "GET /webhook-events/summary"}
)
"""Documented operations the real API answers with 501 (live calls, reported in public): the
sandbox answers them the same way, not as a gap of its own."""


@dataclass
class GatewayOptions:
    timeout_hold_s: float = 5.0
    retry_after_s: float | None = None  # the real API sends no Retry-After; opt in
    variants: Variants = field(default_factory=Variants)  # what to show (variants.py)


class Gateway:
    """Turns one HTTP request under `/api/v2` into an `Outcome`, recording what it answered."""

    def __init__(
        self,
        workspace: Callable[[], Workspace],
        *,
        faults: Faults,
        limiter: RateLimiter,
        responses: ResponseLog,
        options: GatewayOptions,
    ) -> None:
        self._workspace = workspace
        self.faults = faults
        self.limiter = limiter
        self.responses = responses
        self.options = options
        self.calls: Counter[str] = Counter()

    def handle(self, request: HttpRequest) -> Outcome:
        method, path = request.method, request.path
        sub_path = path[len(BASE_PATH) :]
        matched = ROUTER.match(method, sub_path)
        if matched is None:
            self.calls[f"{method} {sub_path}"] += 1
            outcome = error(404, f"Route {method}:{path} not found")
            self.responses.record(None, method, path, outcome.status, outcome.body)
            return outcome
        entry, params = matched
        operation = entry.operation
        self.calls[operation] += 1
        outcome = self._run(entry, params, request)
        if not outcome.drop:
            self.responses.record(
                operation,
                method,
                path,
                outcome.status,
                outcome.body,
                deviations=outcome.deviations,
            )
        return outcome

    # --- the pipeline --------------------------------------------------------------------------

    def _run(self, entry: _Entry, params: dict[str, str], request: HttpRequest) -> Outcome:
        if not self.limiter.admit():
            return error(429, "Rate limit exceeded", self._retry_after())
        fault = self.faults.take(entry.operation)
        if fault is not None and not fault.commits:
            return self._fault(fault)
        try:
            outcome = self._call(entry, params, request)
        except ApiError as exc:
            outcome = Outcome(exc.status, exc.body())
        if fault is not None:
            return self._fault(fault)
        return outcome

    def _call(self, entry: _Entry, params: dict[str, str], request: HttpRequest) -> Outcome:
        headers = request.headers
        ws = self._workspace()
        key = self._authenticate(ws, headers)
        target = headers.get("x-as-workspace")
        if target and target != ws.id:
            raise ApiError(403, "You do not have access to this workspace")
        if not ws.workspace.paid:
            raise ApiError(402, "Workspace does not have an active paid plan")
        variants = self.options.variants
        required = missing_scope(entry.operation, key.scopes)
        if required is not None:
            raise ApiError(*variants.scope_error_reply(required, list(key.scopes)))
        if entry.operation in REAL_NOT_IMPLEMENTED:
            raise ApiError(501, "Not Implemented")
        if entry.route is None:
            raise ApiError(501, f"{entry.operation} is not implemented by the sandbox")
        call = ApiRequest(
            operation=entry.operation,
            method=request.method,
            path=request.path,
            path_params=params,
            query=request.query,
            body=_parse_body(request.body, headers),
            key=key,
            client_ip=request.client_ip,
            user_agent=headers.get("user-agent"),
            headers=headers,
        )
        if variants.listed_key == "full":  # before the handler: a DELETE removes the key
            keys = {record.id: record.key for record in list(ws.api_keys.values())}
        else:
            keys = {}
        cursor = request.query.get("starting_after")
        if cursor and cursor not in ws.issued_cursors:
            rejected = variants.unknown_cursor_reply()
            if rejected is not None:
                raise ApiError(*rejected)
        reply = entry.route.handler(ws, call)
        if isinstance(reply.body, dict) and isinstance(reply.body.get("next_starting_after"), str):
            ws.issued_cursors.add(reply.body["next_starting_after"])
        body, deviations = variants.shape(entry.operation, reply.status, reply.body, keys.get)
        return Outcome(reply.status, body, deviations=deviations)

    @staticmethod
    def _authenticate(ws: Workspace, headers: Mapping[str, str]) -> ApiKeyRecord:
        header = headers.get("authorization")
        if not header:
            raise ApiError(401, "Missing Authorization header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Invalid Authorization header")
        key = ws.key_for(token.strip())
        if key is None:
            raise ApiError(401, "Invalid API key")
        return key

    def _retry_after(self) -> dict[str, str]:
        seconds = self.options.retry_after_s
        return {} if seconds is None else {"Retry-After": f"{seconds:g}"}

    def _fault(self, fault: Fault) -> Outcome:
        if fault.mode == "error_500":
            return error(500, "Internal server error")
        if fault.mode == "error_503":
            return error(503, "Service temporarily unavailable", self._retry_after())
        if fault.mode == "error_429":
            return error(429, "Rate limit exceeded", self._retry_after())
        if fault.mode == "error_502":
            return Outcome(502, _BAD_GATEWAY_PAGE, content_type="text/html")
        hold = self.options.timeout_hold_s if fault.hold_s is None else fault.hold_s
        return Outcome(drop=True, hold_s=hold if fault.mode == "timeout" else 0.0)


def _parse_body(raw: bytes, headers: Mapping[str, str]) -> Any:
    """The decoded JSON body, or None when there is none. Fastify's rules: an empty body with a
    JSON content type is a 400, a body of another type a 415."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not raw:
        if content_type == "application/json":
            raise ApiError(
                400, "Body cannot be empty when content-type is set to 'application/json'"
            )
        return None
    if content_type != "application/json":
        raise ApiError(415, f"Unsupported Media Type: {content_type or 'none'}")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            400, "Body is not valid JSON but content-type is set to 'application/json'"
        ) from None
