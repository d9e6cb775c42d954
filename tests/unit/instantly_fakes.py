"""Test doubles for the Instantly client's unit tests: a scripted MockTransport, a fake clock,
and sample bodies shaped like the OpenAPI document's examples."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httpx

from instantly_guard.instantly import InstantlyClient, RateLimiter, RetryPolicy, StaticKey
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.secret import Secret

BASE_URL = "https://api.test/api/v2"
KEY = "k-test-Zx81nq2Lw7Pv4Rt9"  # registered with the redactor once wrapped in Secret
_ids = itertools.count(1)

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedApi:
    """A MockTransport handler answering from a script; the last reply repeats when it runs out."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    @property
    def count(self) -> int:
        return len(self.requests)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


class SwitchingKey:
    """A key provider that moves to the next key on each refresh and counts the calls."""

    def __init__(self, *keys: str) -> None:
        self._keys = [Secret(k) for k in keys]
        self.index = 0
        self.refreshes = 0

    def __call__(self, *, refresh: bool = False) -> Secret:
        if refresh:
            self.refreshes += 1
            self.index = min(self.index + 1, len(self._keys) - 1)
        return self._keys[self.index]


def make_client(
    api: ScriptedApi,
    *,
    key: KeyProvider | None = None,
    clock: FakeClock | None = None,
    jitter: float = 1.0,
    max_retries: int = 4,
    **kwargs: Any,
) -> tuple[InstantlyClient, FakeClock]:
    """A client over `api` whose sleeps (backoff and rate limiter) land on a fake clock.

    `jitter` is what the policy's random() returns: 1.0 makes backoff its full ceiling.
    """
    clock = clock or FakeClock()
    limiter = RateLimiter(10_000, 1_000_000, clock=clock, sleep=clock.sleep)
    client = InstantlyClient(
        key or StaticKey(KEY),
        BASE_URL,
        transport=httpx.MockTransport(api),
        rate_limiter=limiter,
        sleep=clock.sleep,
        retry_policy=RetryPolicy(random=lambda: jitter),
        max_retries=max_retries,
        **kwargs,
    )
    return client, clock


def error(status: int, message: str, **headers: str) -> httpx.Response:
    """Instantly's error envelope."""
    body = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message}
    return httpx.Response(status, json=body, headers=headers)


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def page(items: list[dict[str, Any]], cursor: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"items": items}
    if cursor is not None:
        body["next_starting_after"] = cursor
    return ok(body)


TS = "2026-08-13T11:11:58.015Z"
ORG = "019ffad2-5c3e-7d8a-963d-6ecaf1ba9999"


def api_key(key: str = "abcd****wxyz", **fields: Any) -> dict[str, Any]:
    return {
        "id": f"019ffad2-5c30-79ee-b624-{next(_ids):012d}",
        "name": "My API Key",
        "scopes": ["audit_logs:read"],
        "key": key,
        "organization_id": ORG,
        "timestamp_created": TS,
        "timestamp_updated": TS,
        **fields,
    }


def audit_log(**fields: Any) -> dict[str, Any]:
    return {
        "id": f"019ffad2-9b83-7eb2-a5c2-{next(_ids):012d}",
        "timestamp": TS,
        "organization_id": ORG,
        "activity_type": 37,
        "ip_address": "127.0.0.1",
        "from_api": True,
        "user_agent": None,
        "api_key_id": None,
        **fields,
    }


def webhook(**fields: Any) -> dict[str, Any]:
    return {
        "id": f"019ffad2-5cf8-732d-8cf0-{next(_ids):012d}",
        "organization": ORG,
        "target_hook_url": "https://hooks.example.com/instantly",
        "timestamp_created": TS,
        "event_type": "email_sent",
        "name": None,
        "campaign": None,
        "headers": {"x-webhook-secret": "wh-secret-value-123456"},
        "status": 1,
        **fields,
    }


def block_list_entry(**fields: Any) -> dict[str, Any]:
    return {
        "id": f"019ffad2-5c92-7661-8a8c-{next(_ids):012d}",
        "timestamp_created": TS,
        "organization_id": ORG,
        "bl_value": "competitor.example",
        "is_domain": True,
        **fields,
    }


def member(**fields: Any) -> dict[str, Any]:
    return {
        "id": f"019ffad2-5cbe-7e77-99c9-{next(_ids):012d}",
        "email": "owner@example.com",
        "user_id": "019ffad2-5cbe-7e77-99c9-572f77591cee",
        "role": "owner",
        "timestamp_created": TS,
        "workspace_id": ORG,
        "accepted": True,
        **fields,
    }


def workspace(**fields: Any) -> dict[str, Any]:
    return {
        "id": ORG,
        "timestamp_created": TS,
        "timestamp_updated": TS,
        "owner": "019ffad2-5cac-7fb9-a336-43e00eee8acc",
        "name": "My Workspace",
        "plan_id": "pid_hg_v1",
        **fields,
    }
