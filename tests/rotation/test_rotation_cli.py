"""`instantly-guard secrets ...`, `rotate` and `sweep` on the local backend against the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from instantly_guard.instantly import InstantlyClient, StaticKey


def _out(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_declare_set_rotate_show_and_sweep(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = rotation_sandbox.add_key("hand-made admin", ["api_keys:all"])

    assert cli("secrets", "declare", "instantly-admin", "--profile", "key_rotation_admin") == 0
    declared = _out(capsys)
    assert declared["labels"] == {"instantly_guard": "managed", "instantly_guard_kind": "api-key"}
    assert (
        cli("secrets", "set", "instantly-admin", "--key-id", admin.id, stdin=admin.key + "\n") == 0
    )
    assert _out(capsys)["version"] == "1"

    assert (
        cli(
            "secrets",
            "declare",
            "audit-key",
            "--scopes",
            "audit_logs:read",
            "--grace",
            "2h",
            "--admin-secret",
            "instantly-admin",
        )
        == 0
    )
    capsys.readouterr()
    assert cli("rotate", "audit-key") == 0
    first = _out(capsys)
    assert first["outcome"] == "rotated"
    assert first["current_version"] == "1"

    assert cli("rotate", "audit-key", "--revoke-now") == 0
    second = _out(capsys)
    assert second["current_version"] == "2"
    assert second["revoked_versions"] == ["1"]

    assert cli("secrets", "show", "audit-key") == 0
    shown_text = capsys.readouterr().out
    shown = json.loads(shown_text)
    assert shown["aliases"] == {"current": "2"}
    assert [v["state"] for v in shown["versions"]] == ["DISABLED", "ENABLED"]
    assert shown["phase"] == "idle"
    assert cli.store.access("audit-key", "2").reveal() not in shown_text  # never a value

    key = cli.store.access("audit-key", "current")
    with InstantlyClient(StaticKey(key), rotation_sandbox.base_url) as client:
        client.probe("/audit-logs", limit=1)

    assert cli("secrets", "list") == 0
    listed = {row["name"]: row for row in _out(capsys)}
    assert listed["audit-key"]["current"] == "2"
    assert cli("sweep") == 0
    swept = _out(capsys)
    assert set(swept) == {"instantly-admin", "audit-key"}
    assert {item["outcome"] for item in swept.values()} == {"swept"}  # nothing was a duplicate


def test_declare_checks_its_arguments(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("secrets", "declare", "k") == 2
    assert "--scopes" in capsys.readouterr().err
    assert cli("secrets", "declare", "k", "--scopes", "audit_log:read") == 2
    assert cli("secrets", "declare", "hook", "--kind", "webhook-secret") == 2
    # Webhook ids are optional (`webhooks connect` records them); the admin secret is not.
    assert "--admin-secret" in capsys.readouterr().err
    assert cli("secrets", "declare", "k", "--scopes", "audit_logs:read", "--grace", "soon") == 2


def test_set_refuses_an_empty_value(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cli("secrets", "declare", "k", "--scopes", "audit_logs:read")
    capsys.readouterr()
    assert cli("secrets", "set", "k", stdin="\n") == 2
    assert "stdin" in capsys.readouterr().err
