"""Fixtures for the webhook tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

# tests/ (for the shared stand-ins, tests/standins/pubsub.py) and this directory (for
# webhook_support) on sys.path, whichever way pytest resolved this conftest's module name.
for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from webhook_support import MAIN, WEBHOOK_VARS, local_env  # noqa: E402


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Callable[..., Any]:
    """A functions-framework test client for functions/webhook/main.py with the given env.

    The function reads os.environ at cold start (its first request), so the environment is set
    with monkeypatch for the test's duration; each call loads a fresh copy of main.py.
    """
    import functions_framework

    def make(env: Mapping[str, str] | None = None, **overrides: str | None) -> Any:
        for name in WEBHOOK_VARS:
            monkeypatch.delenv(name, raising=False)
        for key, value in (env if env is not None else local_env(state_dir, **overrides)).items():
            monkeypatch.setenv(key, value)
        app = functions_framework.create_app(target="receive_webhook", source=str(MAIN))
        return app.test_client()

    return make


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()
