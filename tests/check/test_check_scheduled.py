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
    run_scheduled_check,
)
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_guard.lazy import BUILD_RETRY_SECONDS, Lazy
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
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lazy_check(env: dict[str, str], clock: _Clock | None = None) -> Lazy[ScheduledCheck | None]:
    """What functions/audit_export/main.py holds, logging where the fixture listens."""
    return Lazy(
        lambda: build_scheduled_check(env),
        what="scheduled posture check",
        monotonic=clock or _Clock(),
        logger=logging.getLogger("instantly_guard.check"),
    )


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
    check = lazy_check(env)
    try:
        assert run_scheduled_check(check)
        assert run_scheduled_check(check) is None  # once per interval (1h default)
    finally:
        built = check.reset()
        if built is not None:
            built.close()
    rules = {r.get("check_rule") for r in lines(records)}
    assert "keys.full-access" in rules
    assert "keys.unmanaged" not in rules


def test_misconfiguration_is_logged_never_raised(records: io.StringIO) -> None:
    env = {
        "GUARD_BACKEND": "local",
        "AUDIT_RUN_CHECK": "true",
        "AUDIT_CHECK_POLICY": "/nonexistent.toml",
    }
    assert run_scheduled_check(lazy_check(env)) is None
    errors = [r for r in lines(records) if r["severity"] == "ERROR"]
    assert "cannot read" in str(errors[0]["message"])


def test_a_failed_build_is_retried_on_a_later_export(
    demo: Sandbox, records: io.StringIO, tmp_path: Path
) -> None:
    # The policy file is not there yet at the first export (a late mount): the check is skipped,
    # then built on an export after the retry interval. The earlier code never built it again.
    key = demo.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
    policy = tmp_path / "policy.toml"
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": demo.base_url,
        "INSTANTLY_API_KEY": key.key,
        "AUDIT_RUN_CHECK": "true",
        "AUDIT_CHECK_POLICY": str(policy),
    }
    clock = _Clock()
    check = lazy_check(env, clock)

    assert run_scheduled_check(check) is None
    policy.write_text("disabled_rules = []\n")
    assert run_scheduled_check(check) is None  # within the interval: not built again yet
    clock.now += BUILD_RETRY_SECONDS
    try:
        assert run_scheduled_check(check)
    finally:
        built = check.reset()
        if built is not None:
            built.close()
    assert key.key not in records.getvalue()
