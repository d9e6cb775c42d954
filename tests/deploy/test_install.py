"""The README's install paths and the pre-commit hook, run as a user runs them (slow: PyPI).

A scratch repository holds the working tree as committed content (what a user's clone or a
git URL gives). The README's Install blocks run as written in bash, in fresh virtual
environments, the git URL pointing at that scratch repository served over loopback HTTP (git's
dumb protocol: the offline equivalent of the https URL; pip before 24 refuses `git+file:///`). `pre-commit try-repo` installs the hook exactly as pre-commit does
for a user (this repository without extras, plus the manifest's additional_dependencies) and runs
it on a scratch project. Dependencies come from PyPI, reachable here and in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# Each test installs the package and its dependencies from PyPI into a fresh environment.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GIT_URL = re.compile(r"git\+https://[^'\"\s]+")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
INSTALL_TIMEOUT = 900


def install_blocks() -> list[str]:
    """The ```sh blocks of the README's Install section."""
    text = README.read_text()
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
    )


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The working tree (tracked and new files, not ignored ones) committed in a fresh repository."""
    repo = tmp_path_factory.mktemp("clone") / "instantly-guard"
    listed = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "snapshot"]):
        done = _run(args, repo)
        assert done.returncode == 0, done.stderr
    head = _run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    return repo, head


@pytest.fixture(scope="module")
def served_repo(scratch_repo: tuple[Path, str]) -> Iterator[str]:
    """The scratch repository as `http://127.0.0.1:PORT/instantly-guard.git` (git dumb HTTP)."""
    repo, _ = scratch_repo
    bare = repo.parent / "served" / "instantly-guard.git"
    for args in (
        ["git", "clone", "-q", "--bare", str(repo), str(bare)],
        ["git", "-C", str(bare), "update-server-info"],
    ):
        done = _run(args, repo.parent)
        assert done.returncode == 0, done.stderr

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(bare.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/instantly-guard.git"
    finally:
        server.shutdown()
        server.server_close()


def _venv(where: Path) -> dict[str, str]:
    """A fresh virtual environment; the environment variables that put its bin first."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    # No VIRTUAL_ENV / UV_* of the test run's own environment leaks into the user's commands.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    return {
        **clean,
        "PATH": f"{where / 'bin'}{os.pathsep}{clean['PATH']}",
        "VIRTUAL_ENV": str(where),
    }


def test_the_readme_has_both_install_blocks() -> None:
    blocks = install_blocks()
    assert len(blocks) == 2, blocks
    assert GIT_URL.search(blocks[0]), blocks[0]
    assert "make wheel" in blocks[1]


def test_install_from_the_git_url_as_the_readme_shows(
    scratch_repo: tuple[Path, str], served_repo: str, tmp_path: Path
) -> None:
    _, head = scratch_repo
    script = GIT_URL.sub(f"git+{served_repo}@{head}", install_blocks()[0])
    assert f"git+{served_repo}@{head}" in script
    env = _venv(tmp_path / "venv")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "usage: instantly-guard check" in done.stdout
    assert (tmp_path / "venv" / "bin" / "instantly-guard").is_file()


def test_install_from_a_wheel_make_builds_as_the_readme_shows(
    scratch_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, _ = scratch_repo
    # A clone after `make setup` has the pinned uv in .tools/; link it rather than install it again.
    tools = repo / ".tools"
    if not tools.exists() and (ROOT / ".tools").is_dir():
        tools.symlink_to(ROOT / ".tools")
    env = _venv(tmp_path / "venv")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", install_blocks()[1]],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "usage: instantly-guard check" in done.stdout
    assert list((repo / "dist").glob("instantly_guard-*-py3-none-any.whl"))


def test_the_pre_commit_hook_runs_as_pre_commit_installs_it(
    scratch_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, head = scratch_repo
    env = _venv(tmp_path / "tools")
    got = _run(["pip", "install", "--quiet", "pre-commit"], tmp_path, env)
    assert got.returncode == 0, got.stderr[-3000:]
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("a project with nothing secret in it\n")
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "first"]):
        assert _run(args, project, env).returncode == 0
    try_repo = [
        "pre-commit",
        "try-repo",
        str(repo),
        "instantly-guard-check",
        "--ref",
        head,
        "--all-files",
    ]

    clean = _run(try_repo, project, env)
    assert clean.returncode == 0, clean.stdout[-4000:] + clean.stderr[-3000:]
    assert "instantly-guard check (repository)" in clean.stdout
    assert "Passed" in clean.stdout

    # A committed .env is a finding: the hook fails the commit, with the check's own output.
    (project / ".env").write_text("INSTANTLY_API_KEY=placeholder\n")
    assert _run(["git", "add", ".env"], project, env).returncode == 0
    dirty = _run(try_repo, project, env)
    assert dirty.returncode == 1, dirty.stdout[-4000:] + dirty.stderr[-3000:]
    assert "Failed" in dirty.stdout
    assert ".env" in dirty.stdout
    assert "ModuleNotFoundError" not in dirty.stdout + dirty.stderr
