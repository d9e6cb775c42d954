"""The scheduled check the audit export runs with AUDIT_RUN_CHECK=true, against the sandbox."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from instantly_guard import scopes
from instantly_guard.check import Policy
from instantly_guard.check.scheduled import (
    ScheduledCheck,
    build_scheduled_check,
    reset_scheduled_check,
    run_scheduled_check,
)
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_guard.logs import JsonFormatter
from instantly_guard.rotation.engine import set_current
from instantly_guard.secret import Secret
from instantly_guard.secrets.local import LocalSecretStore
from instantly_sandbox import Sandbox


@pytest.fixture
def demo() -> Iterator[Sandbox]:
    with Sandbox(seed="demo") as sandbox:
        yield sandbox


@pytest.fixture
def records() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("instantly_guard.check")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    reset_scheduled_check()
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        reset_scheduled_check()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_disabled_by_default() -> None:
    assert build_scheduled_check({"GUARD_BACKEND": "local"}) is None


def test_runs_once_per_interval_and_logs_a_warning_per_problem(
    demo: Sandbox, records: io.StringIO
) -> None:
    key = demo.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
    client = InstantlyClient(StaticKey(key.key), demo.base_url, rate_limiter=RateLimiter(100, 6000))
    ticks = iter([0.0, 10.0, 4000.0])
    check = ScheduledCheck(client, Policy(), timedelta(hours=1), clock=lambda: next(ticks))
    try:
        first = check.maybe_run()
        assert check.maybe_run() is None  # 10 s later: not due
        assert check.maybe_run() == first  # past the interval
    finally:
        check.close()
    assert first
    warnings = [r for r in lines(records) if r["severity"] == "WARNING"]
    assert {r["check_rule"] for r in warnings} >= {"keys.full-access", "webhooks.plain-http"}
    summary = [
        r for r in lines(records) if str(r["message"]).startswith("scheduled posture check:")
    ]
    assert len(summary) == 2


def test_key_from_the_local_secret_store_and_policy_file(
    demo: Sandbox, records: io.StringIO, tmp_path: Path
) -> None:
    key = demo.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
    store = LocalSecretStore(tmp_path / "secrets")
    store.create_secret("posture-check", labels={}, annotations={})
    set_current(store, "posture-check", Secret(key.key))
    policy = tmp_path / "policy.toml"
    policy.write_text('disabled_rules = ["keys.unmanaged"]\n')
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": demo.base_url,
        "AUDIT_RUN_CHECK": "true",
        "AUDIT_CHECK_KEY_SECRET": "posture-check",  # pragma: allowlist secret
        "AUDIT_CHECK_POLICY": str(policy),
    }
    assert run_scheduled_check(env)
    assert run_scheduled_check(env) is None  # once per interval (1h default)
    rules = {r.get("check_rule") for r in lines(records)}
    assert "keys.full-access" in rules
    assert "keys.unmanaged" not in rules


def test_misconfiguration_is_logged_never_raised(records: io.StringIO) -> None:
    env = {
        "GUARD_BACKEND": "local",
        "AUDIT_RUN_CHECK": "true",
        "AUDIT_CHECK_POLICY": "/nonexistent.toml",
    }
    assert run_scheduled_check(env) is None
    errors = [r for r in lines(records) if r["severity"] == "ERROR"]
    assert "cannot read" in str(errors[0]["message"])
