"""`instantly_guard.lazy.Lazy`: one build per instance, a failed build retried, logged once."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from instantly_guard.errors import ConfigError
from instantly_guard.lazy import BUILD_RETRY_SECONDS, BuildFailedError, Lazy, unavailable_headers
from instantly_guard.secret import Secret

SECRET = "sk-live-0123456789abcdef0123456789abcdef"  # pragma: allowlist secret


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_builds_once_and_returns_the_same_object() -> None:
    calls: list[int] = []
    lazy = Lazy(lambda: calls.append(1) or object(), what="thing")

    assert not lazy.built
    first = lazy.get()
    assert lazy.get() is first
    assert lazy.built
    assert calls == [1]


def test_concurrent_first_calls_build_once() -> None:
    calls: list[int] = []

    def slow() -> object:
        calls.append(1)
        time.sleep(0.05)
        return object()

    lazy = Lazy(slow, what="thing")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(lazy.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert calls == [1]
    assert len({id(r) for r in results}) == 1


def test_a_configuration_error_is_retried_after_the_interval_like_any_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    attempts: list[int] = []

    def build() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConfigError(["X is required", "Y is not a number"])
        return "built"

    lazy = Lazy(build, what="thing", monotonic=clock)
    caplog.set_level(logging.INFO, logger="instantly_guard")

    with pytest.raises(BuildFailedError) as first:
        lazy.get()
    assert first.value.kind == "config"
    assert first.value.problems == ("X is required", "Y is not a number")
    assert first.value.retryable
    clock.now += 2
    with pytest.raises(BuildFailedError) as early:
        lazy.get()
    assert len(attempts) == 1  # not built again within the interval
    assert early.value.retry_after == pytest.approx(BUILD_RETRY_SECONDS - 2)
    assert unavailable_headers(early.value) == {"Retry-After": "3"}
    clock.now += BUILD_RETRY_SECONDS
    with pytest.raises(BuildFailedError):
        lazy.get()
    assert len(attempts) == 2
    clock.now += BUILD_RETRY_SECONDS
    assert lazy.get() == "built"
    failures = [r for r in caplog.records if "could not be built" in r.getMessage()]
    assert len(failures) == 1  # the same problem twice is logged once
    assert sum("after an earlier failure" in r.getMessage() for r in caplog.records) == 1


def test_each_distinct_failure_is_logged_once_and_never_shows_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Secret(SECRET)  # a secret the build read: every Secret registers itself for redaction
    clock = Clock()
    errors = iter([RuntimeError(f"token {SECRET} refused"), OSError("disk"), OSError("disk")])

    def build() -> str:
        raise next(errors)

    lazy = Lazy(build, what="thing", monotonic=clock)
    caplog.set_level(logging.ERROR, logger="instantly_guard")
    reasons = []
    for _ in range(3):
        with pytest.raises(BuildFailedError) as failed:
            lazy.get()
        reasons.append(failed.value.reason)
        clock.now += BUILD_RETRY_SECONDS

    assert reasons[1] == reasons[2] == "OSError: disk"
    assert len([r for r in caplog.records if "could not be built" in r.getMessage()]) == 2
    assert SECRET not in caplog.text
    assert SECRET not in reasons[0]


def test_a_missing_module_names_the_module() -> None:
    def build() -> str:
        raise ModuleNotFoundError("No module named 'google.cloud.pubsub_v1'", name="google")

    with pytest.raises(BuildFailedError, match="module 'google' is missing"):
        Lazy(build, what="thing").get()
