"""The workspace rate limit: the real 429 body, no headers unless asked for."""

from __future__ import annotations

import time

from instantly_sandbox.ratelimit import RateLimiter


def test_requests_past_the_limit_get_the_real_429_body(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo", rate_limit_per_s=5)
    client = client_for(sb)
    statuses = [client.get("/campaigns", params={"limit": 1}).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = client.get("/campaigns")
    assert limited.status_code == 429
    assert limited.json() == {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": "Rate limit exceeded",
    }
    assert "retry-after" not in limited.headers


def test_the_limit_is_shared_by_every_key(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo", rate_limit_per_s=4, retry_after_s=1)
    first, second = client_for(sb, "admin"), client_for(sb, "bi-readonly")
    for _ in range(2):
        assert first.get("/campaigns").status_code == 200
        assert second.get("/campaigns").status_code == 200
    limited = second.get("/campaigns")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"


def test_sliding_windows_per_second_and_per_minute() -> None:
    now = [0.0]
    limiter = RateLimiter(per_s=2, per_min=3, monotonic=lambda: now[0])
    assert [limiter.admit() for _ in range(3)] == [True, True, False]
    now[0] = 1.01
    assert limiter.admit() is True  # second window has room again, minute has 3
    assert limiter.admit() is False  # the minute is full
    now[0] = 61.0
    assert limiter.admit() is True


def test_limit_can_be_changed_and_lifted_at_runtime(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo")
    client = client_for(sb)
    sb.set_rate_limit(1)
    client.get("/campaigns")
    assert client.get("/campaigns").status_code == 429
    sb.set_rate_limit(None)
    started = time.monotonic()
    assert all(client.get("/campaigns").status_code == 200 for _ in range(20))
    assert time.monotonic() - started < 2
