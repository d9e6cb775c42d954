"""The production wheel: the library alone; the sandbox and the local stack stay in the clone,
and the CLI's own dependencies are an extra (`instantly-guard[cli]`)."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert UV.is_file(), "run `make setup` first"
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    command = [str(UV), "build", "--wheel", "--out-dir", str(out), str(ROOT)]
    # hatchling is in the uv cache after `make setup`; go to the index only if not.
    result = subprocess.run(
        [*command, "--offline"], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode != 0:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, timeout=600
        )
    assert result.returncode == 0, result.stderr
    [built] = out.glob("*.whl")
    return built


def test_wheel_holds_the_library_without_the_development_parts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert "instantly_guard" in tops
    assert "instantly_sandbox" not in tops
    assert not [n for n in names if n.startswith("instantly_guard/localstack/")]
    assert "instantly_guard/webhook/handler.py" in names
    assert "instantly_guard/cli/__init__.py" in names


def test_the_cli_dependencies_are_an_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(archive.read(metadata))
    requires = message.get_all("Requires-Dist") or []
    assert "cli" in (message.get_all("Provides-Extra") or [])
    detect = [r for r in requires if r.lower().startswith("detect-secrets")]
    assert detect
    assert all("extra == 'cli'" in r or 'extra == "cli"' in r for r in detect), detect
    assert any(r.startswith("functions-framework") for r in requires)


def test_a_development_command_without_the_sandbox_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instantly_guard.cli import main

    # What an installed wheel looks like: the sandbox package is not there.
    monkeypatch.setitem(sys.modules, "instantly_sandbox", None)

    assert main(["sandbox", "--port", "0"]) == 2
    assert "needs the development checkout" in capsys.readouterr().err


def test_check_without_the_cli_extra_says_how_to_install_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from instantly_guard.cli import main

    # What `pip install instantly-guard` without `[cli]` looks like: no detect-secrets.
    for name in [m for m in sys.modules if m.startswith("detect_secrets")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "detect_secrets", None)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "notes.txt").write_text("nothing secret\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "notes.txt"], check=True)
    monkeypatch.chdir(tmp_path)

    assert main(["check", "--no-workspace"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "needs the cli extra" in lines[0]
    assert "instantly-guard[cli]" in lines[0]
    assert "Traceback" not in captured.err
