"""Helpers that build deliveries for tests and benchmarks (no test framework needed).

`SimpleRequest` satisfies the handler's `RequestLike`; `delivery(...)` builds a genuine one;
`wsgi_environ(...)` is what a WSGI server hands a function for a POST.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from instantly_guard.webhook.settings import DEFAULT_HEADER


@dataclass
class SimpleRequest:
    """An in-memory request. `content_length=None` models a chunked body."""

    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    remote_addr: str | None = "127.0.0.1"
    content_length: int | None = None
    stream: io.BytesIO = field(init=False)

    def __post_init__(self) -> None:
        # Header names are case-insensitive: keep them lower-case, as the handler looks them up.
        self.headers = {name.lower(): value for name, value in self.headers.items()}
        self.stream = io.BytesIO(self.body)


def sample_event(event_type: str = "reply_received", **fields: Any) -> dict[str, Any]:
    """A payload shaped like Instantly's (see FACTS.md); `fields` override or add keys."""
    payload: dict[str, Any] = {
        "timestamp": "2025-01-15T10:30:00.000Z",
        "event_type": event_type,
        "workspace": "019ffad2-5cf8-732d-8cf0-4145e239bac6",
        "campaign_id": "019ffad2-5cf8-732d-8cf0-41466f7573b6",
        "campaign_name": "Q3 Outbound",
        "lead_email": "jordan.lee@prospect.example",
        "email_account": "sales1@acme-mail.example",
        "step": 1,
        "variant": 1,
        "is_first": True,
    }
    payload.update(fields)
    return payload


def delivery(
    payload: Mapping[str, Any] | bytes,
    secret: str | None,
    *,
    header: str = DEFAULT_HEADER,
    extra_headers: Mapping[str, str] | None = None,
    chunked: bool = False,
    remote_addr: str | None = "127.0.0.1",
) -> SimpleRequest:
    """A POST of `payload` as JSON carrying `secret` in `header` (no secret when None)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[header] = secret
    headers.update(extra_headers or {})
    return SimpleRequest(
        headers=headers,
        body=body,
        remote_addr=remote_addr,
        content_length=None if chunked else len(body),
    )


def wsgi_environ(body: bytes, **keys: str) -> dict[str, Any]:
    """The PEP 3333 environ of a POST of `body` to `/` from 127.0.0.1, plus `keys` (headers as
    `HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`; any key may be overridden)."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **keys,
    }
