"""The `function` fixture: `run_inventory` through functions-framework, with an environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

MAIN = Path(__file__).resolve().parents[2] / "functions" / "inventory" / "main.py"


@pytest.fixture
def function(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import functions_framework

    loaded: list[Any] = []

    def make(env: dict[str, str]) -> Any:
        prefixes = (
            "INVENTORY_",
            "GUARD_",
            "INSTANTLY_",
            "AUDIT_",
            "DETECT_",
            "STORAGE_",
            "LOGGING_",
        )
        for name in [n for n in os.environ if n.startswith(prefixes)]:
            monkeypatch.delenv(name)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = functions_framework.create_app(target="run_inventory", source=str(MAIN))
        loaded.append(sys.modules["main"])
        return app.test_client()

    yield make
    for module in loaded:
        built = module._service.reset()
        if built is not None:
            built.close()
