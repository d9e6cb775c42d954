"""What travels between the HTTP plumbing and the dispatchers: a parsed request, an outcome."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from instantly_sandbox.errors import envelope

JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class HttpRequest:
    """`headers` have lower-case names; `query` keeps the first value of each parameter."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    client_ip: str


@dataclass(frozen=True)
class Outcome:
    """What to send back. `drop` closes the connection without a response after `hold_s`.
    `deviations`: the deliberate breaks of the document a variant made in `body` (variants.py)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE
    drop: bool = False
    hold_s: float = 0.0
    deviations: tuple[str, ...] = ()

    def encoded(self) -> bytes:
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Outcome:
    """An error envelope outcome."""
    return Outcome(status, envelope(status, message), headers or {})
