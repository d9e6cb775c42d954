"""`instantly-guard sandbox`: one JSON line when ready, clean exit on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from instantly_guard.cli import build_parser

pytestmark = pytest.mark.slow


# The console script, as a user runs it.
COMMAND = str(Path(sys.executable).with_name("instantly-guard"))


def _start(*args: str) -> tuple[subprocess.Popen[str], dict]:
    process = subprocess.Popen(
        [COMMAND, "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"the sandbox printed nothing; stderr:\n{err}")
    return process, json.loads(line)


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_json_line_serves_and_exits_cleanly(stop_with: signal.Signals) -> None:
    process, ready = _start("--seed", "demo", "--listing-order", "desc")
    try:
        assert ready["base_url"].startswith("http://127.0.0.1:")
        assert ready["base_url"].endswith("/api/v2")
        admin = ready["keys"]["admin"]
        assert admin["scopes"] == ["all:all"]
        assert {"legacy-zapier", "ops-key-manager", "bi-readonly"} <= set(ready["keys"])
        response = httpx.get(
            ready["base_url"] + "/workspaces/current",
            headers={"Authorization": f"Bearer {admin['key']}"},
        )
        assert response.status_code == 200
        assert httpx.get(ready["control_url"] + "/health").json()["ok"] is True
    finally:
        process.send_signal(stop_with)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == ""  # nothing after the ready line


def test_empty_seed_prints_only_the_admin_key() -> None:
    process, ready = _start("--seed", "empty")
    process.terminate()
    process.communicate(timeout=10)
    assert list(ready["keys"]) == ["admin"]


def test_subcommand_is_registered() -> None:
    args = build_parser().parse_args(["sandbox", "--port", "8123", "--seed", "empty"])
    assert (args.port, args.seed, args.host, args.listing_order) == (
        8123,
        "empty",
        "127.0.0.1",
        "asc",
    )
