"""The rotation function's settings: every problem reported at once, a safe lease."""

from __future__ import annotations

import pytest

from instantly_guard.errors import ConfigError
from instantly_guard.rotation.builder import DEFAULT_LEASE, RotationSettings


def test_defaults() -> None:
    settings = RotationSettings.from_env({"GUARD_BACKEND": "local"})
    assert settings.lease == DEFAULT_LEASE
    assert settings.test_attempts == 3


def test_a_lease_not_longer_than_the_function_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="ROTATION_LEASE must be longer than the function"):
        RotationSettings.from_env({"GUARD_BACKEND": "local", "ROTATION_LEASE": "5m"})
