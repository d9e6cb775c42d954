"""`instantly-guard check` end to end: flags, environment, formats, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from instantly_guard import scopes
from instantly_guard.cli import main
from instantly_sandbox import Sandbox
from instantly_sandbox import seed as demo_seed


@pytest.fixture
def demo() -> Iterator[Sandbox]:
    with Sandbox(seed="demo") as sandbox:
        yield sandbox


@pytest.fixture
def env(demo: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    key = demo.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
    values = {"INSTANTLY_API_BASE": demo.base_url, "INSTANTLY_API_KEY": key.key}
    for name in ("INSTANTLY_API_KEY_FILE", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in demo_seed.DEMO_POLICY.items()))
    return path


def test_json_report_and_default_fail_on_high(
    env: dict[str, str], policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--format", "json", "--no-repo", "--policy", str(policy_file)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["workspace"] == demo_seed.WORKSPACE_NAME
    assert report["summary"]["critical"] >= 2


def test_fail_on_none_and_flags_override_the_file(
    env: dict[str, str], policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "check",
            "--no-repo",
            "--policy",
            str(policy_file),
            "--fail-on",
            "none",
            "--allowed-domain",
            "acme.example",
            "--allowed-domain",
            "gmail.com",
            "--disable",
            "keys.unmanaged",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "PASS  medium    members.outside-domain" in out
    assert "keys.unmanaged" not in out
    assert "\033[" not in out  # not a terminal: no colour


def test_sarif_to_a_file(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "check.sarif"
    code = main(
        ["check", "--no-repo", "--format", "sarif", "-o", str(out), "--fail-on", "critical"]
    )
    assert code == 1
    document = json.loads(out.read_text())
    assert document["version"] == "2.1.0"
    assert "report written to" in capsys.readouterr().err


def test_an_unwritable_output_is_a_usage_error_not_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-dir" / "check.sarif"
    code = main(["check", "--no-workspace", "--repo", str(tmp_path), "-o", str(out)])
    assert code == 2
    assert "cannot write" in capsys.readouterr().err


def test_missing_key_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INSTANTLY_API_KEY", raising=False)
    monkeypatch.delenv("INSTANTLY_API_KEY_FILE", raising=False)
    assert main(["check", "--no-repo"]) == 2
    err = capsys.readouterr().err
    assert "INSTANTLY_API_KEY" in err
    assert "--no-workspace" in err
    assert "api_keys:read" in err


def test_missing_key_names_the_managed_secrets_that_hold_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instantly_guard.rotation.model import Kind, ManagedConfig
    from instantly_guard.secrets.local import LocalSecretStore

    monkeypatch.delenv("INSTANTLY_API_KEY", raising=False)
    monkeypatch.delenv("INSTANTLY_API_KEY_FILE", raising=False)
    monkeypatch.setenv("GUARD_BACKEND", "local")
    monkeypatch.setenv("GUARD_STATE_DIR", str(tmp_path))
    store = LocalSecretStore(tmp_path / "secrets")
    for name, profile in (("posture-check", "posture_check"), ("exporter", "audit_exporter")):
        scopes_ = scopes.PROFILES[profile].scope_strings
        labels, notes = ManagedConfig.declare(kind=Kind.API_KEY, scopes=scopes_)
        store.create_secret(name, labels=labels, annotations=notes)
    assert main(["check", "--no-repo"]) == 2
    err = capsys.readouterr().err
    assert "--key-secret posture-check" in err
    assert "exporter" not in err  # its key cannot read what the check needs
    assert "secrets declare posture-check" not in err


def test_revoked_key_is_explained(
    demo: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANTLY_API_BASE", demo.base_url)
    monkeypatch.setenv("INSTANTLY_API_KEY", "not-a-real-key-0123456789")
    assert main(["check", "--no-repo"]) == 2
    assert "Instantly rejected the key" in capsys.readouterr().err


def test_show_scopes_and_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--show-scopes"]) == 0
    assert capsys.readouterr().out.split() == list(scopes.PROFILES["posture_check"].scope_strings)
    assert main(["check", "--list-rules"]) == 0
    assert "repository.committed-secret" in capsys.readouterr().out


def test_unknown_rule_to_disable_is_refused(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--no-repo", "--disable", "keys.nope"]) == 2
    assert "unknown rule id" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_repository_only_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INSTANTLY_API_KEY", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text("X=1\n")
    code = main(["check", "--no-workspace", "--repo", str(tmp_path), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1  # repository.env-not-ignored is high
    assert {f["rule_id"] for f in report["findings"] if f["status"] == "fail"} == {
        "repository.env-not-ignored"
    }


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_workspace_is_an_error_not_a_green_run(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANTLY_API_BASE", f"http://127.0.0.1:{_closed_port()}/api/v2")
    code = main(["check", "--no-repo", "--fail-on", "none"])
    captured = capsys.readouterr()
    assert code == 3  # upstream: run again later; never 0
    assert "cannot reach Instantly" in captured.err
    assert "INSTANTLY_API_BASE" in captured.err
    assert "passed" not in captured.out


def test_a_workspace_of_which_nothing_could_be_read_is_an_error(demo: Sandbox) -> None:
    from instantly_guard.check import Policy
    from instantly_guard.check.collect import WorkspaceUnreadableError, collect_workspace
    from instantly_guard.cli.output import exit_code_for
    from instantly_guard.instantly import InstantlyClient, StaticKey

    key = demo.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
    demo.faults.fail_next("*", times=50, mode="error_503")
    with (
        InstantlyClient(StaticKey(key.key), demo.base_url, max_retries=0) as client,
        pytest.raises(WorkspaceUnreadableError) as caught,
    ):
        collect_workspace(client, Policy())
    assert "no part of the workspace" in str(caught.value)
    assert exit_code_for(caught.value) == 3


def test_list_rules_into_a_closed_pipe_exits_quietly() -> None:
    import sys

    # `head -n 0` exits before the command writes: the write always meets a closed pipe.
    pipeline = (
        f"{sys.executable} -m instantly_guard.cli check --list-rules | head -n 0; "
        'echo "status=${PIPESTATUS[0]}"'
    )
    head = subprocess.run(
        ["/bin/bash", "-c", pipeline],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in head.stderr, head.stderr
    assert "BrokenPipe" not in head.stderr
    assert head.stdout.strip() == "status=141"


@pytest.mark.parametrize("extra", [[], ["--no-repo"]])
def test_nothing_to_check_is_an_error_not_a_green_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    """`check --no-workspace` outside a git work tree (or with --no-repo) evaluates no rule: a
    first-time user must not read that as a pass."""
    monkeypatch.delenv("INSTANTLY_API_KEY", raising=False)
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    code = main(["check", "--no-workspace", "--repo", str(outside), *extra])
    assert code == 2
    assert "nothing was checked" in capsys.readouterr().err
