"""Helpers for the inventory tests: the environment of a run, a person's script that changes the
workspace over Instantly's own HTTP API, and the entries the run wrote to the exported log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.inventory.service import InventoryService, build_service
from instantly_guard.scopes import PROFILES
from instantly_sandbox import Sandbox

READ_SCOPES = PROFILES["posture_check"].scope_strings


def inventory_key(sb: Sandbox) -> str:
    """The inventory's read-only key, made once per sandbox (another key would be a change)."""
    known = sb.keys.get("inventory")
    return (known or sb.add_key("inventory", READ_SCOPES)).key


def inventory_env(sb: Sandbox, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": inventory_key(sb),
        **extra,
    }


class Clock:
    """A settable clock: each run is `advance`d by hand, so timestamps are predictable."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta = timedelta(minutes=15)) -> None:
        self.now += by


def service(
    sb: Sandbox, state_dir: Path, clock: Clock | None = None, **kw: Any
) -> InventoryService:
    return build_service(
        inventory_env(sb, state_dir),
        clock=clock or Clock(),
        client_options={"max_retries": 0},
        **kw,
    )


def log_path(state_dir: Path) -> Path:
    return state_dir / "audit" / "instantly-audit.jsonl"


def inventory_entries(state_dir: Path, *, unique: bool = True) -> list[dict[str, Any]]:
    return [
        e
        for e in read_entries(log_path(state_dir), unique=unique)
        if e["labels"].get("source") == "inventory"
    ]


def changes(state_dir: Path) -> list[tuple[str, str]]:
    """(change, object name) of every inventory entry but the baseline, in log order."""
    return [
        (e["jsonPayload"]["change"], e["jsonPayload"]["object"]["name"])
        for e in inventory_entries(state_dir)
        if e["jsonPayload"]["change"] != "inventory.baseline"
    ]


class Person:
    """Someone changing the workspace with a script, over Instantly's API (an admin key)."""

    def __init__(self, sb: Sandbox) -> None:
        self.client = httpx.Client(
            base_url=sb.base_url,
            headers={"Authorization": f"Bearer {sb.keys['admin'].key}"},
            timeout=5,
        )

    def __enter__(self) -> Person:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = self.client.request(method, path, **kw)
        assert response.status_code == 200, (method, path, response.text)
        body: dict[str, Any] = response.json()
        return body

    def member_id(self, email: str) -> str:
        items = self.call("GET", "/workspace-members", params={"search": email})["items"]
        (match,) = [m for m in items if m["email"] == email]
        return str(match["id"])

    def block_id(self, value: str) -> str:
        items = self.call("GET", "/block-lists-entries", params={"search": value})["items"]
        (match,) = [e for e in items if e["bl_value"] == value]
        return str(match["id"])
