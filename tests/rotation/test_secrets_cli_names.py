"""Secret-name errors that lead somewhere, fixing and removing a declaration, and text output."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from instantly_guard.cli import main


def _secrets_dir() -> Path:
    return Path(os.environ["GUARD_STATE_DIR"]) / "secrets"


def _admin(cli: Any, sandbox: Any, capsys: pytest.CaptureFixture[str]) -> None:
    admin = sandbox.add_key("hand-made admin", ["api_keys:all"])
    assert cli("secrets", "declare", "instantly-admin", "--profile", "key_rotation_admin") == 0
    assert cli("secrets", "set", "instantly-admin", "--key-id", admin.id, stdin=admin.key) == 0
    capsys.readouterr()


def test_set_on_an_undeclared_secret_says_declare_it_first_and_names_the_store(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("secrets", "set", "instantly-admin", stdin="k-123") == 2
    err = capsys.readouterr().err
    assert "declare it first" in err
    assert "instantly-guard secrets declare instantly-admin" in err
    assert str(_secrets_dir()) in err
    assert err.count("\n") == 1  # one line, no traceback


def test_rotate_with_a_typo_suggests_the_close_name(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _admin(cli, rotation_sandbox, capsys)
    assert cli("rotate", "instantly-admn") == 2
    err = capsys.readouterr().err
    assert "did you mean instantly-admin?" in err
    assert str(_secrets_dir()) in err
    assert cli("secrets", "show", "instantly-admn") == 2
    assert "did you mean instantly-admin?" in capsys.readouterr().err


def test_declare_refuses_an_admin_secret_that_is_not_declared(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _admin(cli, rotation_sandbox, capsys)
    assert (
        cli("secrets", "declare", "k", "--scopes", "audit_logs:read", "--admin-secret", "nosuch")
        == 2
    )
    err = capsys.readouterr().err
    assert "--admin-secret" in err
    assert "nosuch" in err
    assert "instantly-admin" in err
    assert list(cli.store.list_secrets()) == [cli.store.get("instantly-admin")]  # nothing created


def test_the_readmes_webhook_secret_declare_line_works(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    line = next(
        ln for ln in readme.splitlines() if "secrets declare NAME --kind webhook-secret" in ln
    )
    argv = line.split("#")[0].split()[1:]
    _admin(cli, rotation_sandbox, capsys)
    argv = [
        {"NAME": "hook-secret", "ID": "wh-1", "ADMIN": "instantly-admin"}.get(a, a) for a in argv
    ]
    assert cli(*argv) == 0, capsys.readouterr().err


def test_a_declaration_can_be_fixed_and_removed(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _admin(cli, rotation_sandbox, capsys)
    assert cli("secrets", "declare", "k", "--scopes", "audit_logs:read") == 0
    assert cli("secrets", "declare", "k", "--scopes", "audit_logs:read") == 2
    assert "--update" in capsys.readouterr().err
    assert (
        cli(
            "secrets",
            "declare",
            "k",
            "--update",
            "--scopes",
            "audit_logs:read",
            "--admin-secret",
            "instantly-admin",
        )
        == 0
    )
    declared = cli.store.get("k").annotations
    assert declared["instantly-guard.admin-secret"] == "instantly-admin"  # pragma: allowlist secret
    assert cli("rotate", "k") == 0
    capsys.readouterr()
    assert cli("secrets", "undeclare", "k") == 2  # it holds a key now
    assert "--force" in capsys.readouterr().err
    assert cli("secrets", "undeclare", "k", "--force") == 0
    capsys.readouterr()
    assert cli("sweep", "--format", "json") == 0  # the sweep no longer sees it
    assert set(json.loads(capsys.readouterr().out)) == {"instantly-admin"}


def test_an_update_changes_only_the_options_given(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _admin(cli, rotation_sandbox, capsys)
    declare = ("secrets", "declare", "k")
    assert cli(*declare, "--scopes", "audit_logs:read", "--admin-secret", "instantly-admin") == 0
    assert cli(*declare, "--update", "--grace", "2d") == 0
    declared = cli.store.get("k").annotations
    assert declared["instantly-guard.grace"] == "2d"
    assert declared["instantly-guard.scopes"] == "audit_logs:read"
    assert declared["instantly-guard.admin-secret"] == "instantly-admin"  # pragma: allowlist secret
    assert cli("rotate", "k") == 0  # minted by the admin secret the update kept
    assert cli(*declare, "--update", "--grace", "") == 0  # an empty value: the default again
    assert "instantly-guard.grace" not in cli.store.get("k").annotations
    assert cli(*declare, "--update", "--kind", "webhook-secret", "--webhook-id", "wh-1") == 2
    assert "kind cannot change" in capsys.readouterr().err


def test_a_webhook_header_is_rotated_by_one_secret_only(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _admin(cli, rotation_sandbox, capsys)
    hook = ("--kind", "webhook-secret", "--admin-secret", "instantly-admin")
    assert cli("secrets", "declare", "hook-a", *hook, "--webhook-id", "wh-1") == 0
    capsys.readouterr()
    assert (
        cli("secrets", "declare", "hook-b", *hook, "--webhook-id", "wh-2", "--webhook-id", "wh-1")
        == 2
    )
    assert "wh-1 already has its x-webhook-secret header rotated by secret hook-a" in (
        capsys.readouterr().err
    )
    assert cli("secrets", "declare", "hook-b", *hook, "--webhook-id", "wh-2") == 0
    other_header = ("--webhook-id", "wh-1", "--webhook-header", "x-other")
    assert cli("secrets", "declare", "hook-c", *hook, *other_header) == 0
    assert cli("secrets", "declare", "hook-a", "--update", "--grace", "2h") == 0  # itself: fine


def test_text_output_on_a_terminal_and_json_when_asked(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _admin(cli, rotation_sandbox, capsys)
    assert cli("secrets", "list", "--format", "text") == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:2] == ["NAME", "KIND"]
    assert "instantly-admin" in text
    assert cli("secrets", "list", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "instantly-admin"
    assert cli("secrets", "show", "instantly-admin", "--format", "text") == 0
    shown = capsys.readouterr().out
    assert "VERSION" in shown
    assert "current=1" in shown


def test_gcp_backend_without_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GUARD_BACKEND", "gcp")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never ask a metadata server
    assert main(["secrets", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert "no Google credentials" in err
    assert "GUARD_BACKEND=local" in err


def _declared_and_rotated(cli: Any, sandbox: Any, capsys: pytest.CaptureFixture[str]) -> str:
    """`k` declared and rotated once: the id of the Instantly key it holds."""
    _admin(cli, sandbox, capsys)
    args = ("secrets", "declare", "k", "--scopes", "audit_logs:read")
    assert cli(*args, "--admin-secret", "instantly-admin") == 0
    assert cli("rotate", "k") == 0
    capsys.readouterr()
    key_id = cli.store.get("k").annotations["instantly-guard.current-key-id"]
    assert key_id in sandbox.state.api_keys
    return str(key_id)


def test_undeclare_force_prints_the_id_of_the_key_it_leaves(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = _declared_and_rotated(cli, rotation_sandbox, capsys)
    assert cli("secrets", "undeclare", "k") == 2
    assert key_id in capsys.readouterr().err  # the refusal names the key too

    assert cli("secrets", "undeclare", "k", "--force", "--format", "text") == 0

    out = capsys.readouterr().out
    assert f"left in Instantly: key {key_id}" in out
    assert key_id in rotation_sandbox.state.api_keys  # --force never touches Instantly


def test_undeclare_revoke_key_deletes_the_key_then_the_secret(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = _declared_and_rotated(cli, rotation_sandbox, capsys)

    assert cli("secrets", "undeclare", "k", "--revoke-key", "--format", "json") == 0

    result = json.loads(capsys.readouterr().out)
    assert result["revoked_key_ids"] == [key_id]
    assert result["left_key_ids"] == []
    assert key_id not in rotation_sandbox.state.api_keys
    assert cli("secrets", "show", "k") == 2


def test_secrets_list_without_a_store_is_an_error_not_an_empty_list(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("secrets", "list", "--format", "json") == 2  # GUARD_STATE_DIR holds nothing
    assert "no local secret store" in capsys.readouterr().err


def test_full_access_is_refused_outside_development(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("secrets", "declare", "k", "--scopes", "all:all") == 2
    assert "--environment development" in capsys.readouterr().err
    assert cli("secrets", "declare", "k", "--profile", "posture_check", "--scopes", "all:all") == 2
    assert (
        cli("secrets", "declare", "k", "--scopes", "all:all", "--environment", "development") == 0
    )


def test_declare_suggests_a_next_step_that_works(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --admin-secret the secret mints its own keys: `rotate` would fail (it has no key
    yet), so the next step shown is storing a first one by hand."""
    assert cli("secrets", "declare", "self", "--scopes", "leads:read", "--format", "text") == 0
    shown = capsys.readouterr().out
    assert "next: instantly-guard rotate" not in shown
    assert "instantly-guard secrets set self --key-id" in shown
    assert cli("rotate", "self") != 0  # what the old next step led to
    capsys.readouterr()

    _admin(cli, rotation_sandbox, capsys)
    args = ("secrets", "declare", "k", "--scopes", "leads:read", "--admin-secret")
    assert cli(*args, "instantly-admin", "--format", "text") == 0
    assert "next: instantly-guard rotate k" in capsys.readouterr().out
    assert cli("rotate", "k") == 0


def test_secrets_set_on_a_terminal_prompts_and_never_echoes_the_key(
    cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A person typing the key at a terminal sees a prompt, and the key does not appear on the
    screen. Run in a real pseudo-terminal (its controlling terminal), as a person would."""
    import pty
    import select
    import sys

    assert cli("secrets", "declare", "by-hand", "--scopes", "leads:read") == 0
    capsys.readouterr()
    typed = "typed-at-the-terminal-0123456789abcdef"  # pragma: allowlist secret
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the pty as its controlling terminal
        env = {**os.environ, "GUARD_BACKEND": "local", "GUARD_STATE_DIR": str(tmp_path / "state")}
        args = ["-m", "instantly_guard.cli", "secrets", "set", "by-hand", "--format", "text"]
        os.execve(sys.executable, [sys.executable, *args], env)  # noqa: S606 - fixed argv
    screen = b""

    def read_until(marker: bytes, timeout: float = 30.0) -> None:
        nonlocal screen
        while marker not in screen:
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, f"no {marker!r} on the terminal; it shows {screen!r}"
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child exited and closed the terminal
                break
            if not chunk:
                break
            screen += chunk

    try:
        read_until(b"input hidden")
        os.write(fd, typed.encode() + b"\n")
        read_until(b"as current")
        _, status = os.waitpid(pid, 0)
    except BaseException:
        os.kill(pid, 9)  # never leave the child waiting on its terminal
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(fd)

    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert typed.encode() not in screen
    assert cli.store.access("by-hand", "current").reveal() == typed
