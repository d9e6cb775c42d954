"""What a route handler receives and returns, and the route table type."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from instantly_sandbox.state import ApiKeyRecord, Workspace


@dataclass(frozen=True)
class ApiRequest:
    """An authenticated, authorised API call. `query` keeps the first value of each parameter."""

    operation: str
    method: str
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    key: ApiKeyRecord
    client_ip: str
    user_agent: str | None
    headers: Mapping[str, str] = field(default_factory=dict)

    def audit_fields(self) -> dict[str, Any]:
        """The audit entry fields every audited API mutation carries."""
        return {
            "api_key_id": self.key.id,
            "from_api": True,
            "ip_address": self.client_ip,
            "user_agent": self.user_agent,
        }


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


Handler = Callable[[Workspace, ApiRequest], Reply]


@dataclass(frozen=True)
class Route:
    """`template` is the OpenAPI path without the base, e.g. `/webhooks/{id}/resume`."""

    method: str
    template: str
    handler: Handler

    @property
    def operation(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def pattern(self) -> re.Pattern[str]:
        return template_pattern(self.template)


def template_pattern(template: str) -> re.Pattern[str]:
    """`/webhooks/{id}` -> a regex matching one path with a named group per parameter."""
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{regex}$")


def ok(body: Any) -> Reply:
    return Reply(200, body)
