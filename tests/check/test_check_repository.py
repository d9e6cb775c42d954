"""The repository rules on real temporary git repositories (git and detect-secrets, no mocks)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from instantly_guard.check import Policy, Section, run_check
from instantly_guard.check.gitrepo import RepositoryUnreadableError, collect_repository

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# Built at run time so that this file itself holds nothing key-like for a scanner.
AWS_LIKE_KEY = "AKIA" + "Z7Q4WXYN3B6KLM2P"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    return root


def commit_all(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "test")


def failed_ids(repo: Path, policy: Policy | None = None) -> dict[str, list[str]]:
    report = run_check(None, policy or Policy(), repo=repo)
    result: dict[str, list[str]] = {}
    for finding in report.findings:
        if finding.failed:
            result.setdefault(finding.rule_id, []).append(finding.evidence)
    return result


def test_committed_env_file_and_aws_key_are_found(repo: Path) -> None:
    (repo / ".env").write_text("INSTANTLY_API_KEY=whatever\n")
    (repo / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_LIKE_KEY}"\n')
    (repo / "README.md").write_text("nothing to see\n")
    commit_all(repo)

    failed = failed_ids(repo)
    assert failed["repository.env-not-ignored"] == [".env is committed (tracked by git)"]
    [evidence] = [e for e in failed["repository.committed-secret"] if "settings.py" in e]
    assert evidence.startswith("AWS Access Key in settings.py:1")
    assert AWS_LIKE_KEY not in str(failed)


def test_untracked_env_file_without_ignore_rule_fails(repo: Path) -> None:
    (repo / "svc").mkdir()
    (repo / "svc" / "prod.env").write_text("X=1\n")
    failed = failed_ids(repo)
    assert failed["repository.env-not-ignored"] == [
        "svc/prod.env is not ignored by git (git check-ignore finds no rule)"
    ]


def test_ignored_env_and_example_files_pass(repo: Path) -> None:
    (repo / ".gitignore").write_text(".env\n")
    (repo / ".env").write_text("INSTANTLY_API_KEY=x\n")
    (repo / ".env.example").write_text("INSTANTLY_API_KEY=\n")
    commit_all(repo)
    snapshot = collect_repository(repo)
    assert {(e.path, e.tracked, e.ignored) for e in snapshot.env_files} == {
        (".env", False, True),
        (".env.example", True, False),
    }
    assert failed_ids(repo) == {}


def test_a_detect_secrets_baseline_silences_audited_false_positives(repo: Path) -> None:
    (repo / "settings.py").write_text(f'KEY = "{AWS_LIKE_KEY}"\n')
    commit_all(repo)
    [found] = collect_repository(repo).secrets
    baseline = {"results": {"settings.py": [{"hashed_secret": found.hashed, "type": found.kind}]}}
    (repo / ".secrets.baseline").write_text(json.dumps(baseline))
    assert "repository.committed-secret" not in failed_ids(repo)
    baseline["results"]["settings.py"][0]["is_secret"] = True
    (repo / ".secrets.baseline").write_text(json.dumps(baseline))
    assert "repository.committed-secret" in failed_ids(repo)


def test_untracked_secrets_are_not_reported(repo: Path) -> None:
    (repo / "scratch.py").write_text(f'key = "{AWS_LIKE_KEY}"\n')
    assert "repository.committed-secret" not in failed_ids(repo)


def test_allowlist_pragma_is_honoured(repo: Path) -> None:
    (repo / "fixture.py").write_text(f'KEY = "{AWS_LIKE_KEY}"  # pragma: allowlist secret\n')
    commit_all(repo)
    assert "repository.committed-secret" not in failed_ids(repo)


def test_a_directory_that_is_not_a_repository_is_skipped(tmp_path: Path) -> None:
    with pytest.raises(RepositoryUnreadableError, match="not inside a git work tree"):
        collect_repository(tmp_path)
    report = run_check(None, Policy(), repo=tmp_path)
    assert {f.status for f in report.findings} == {"skip"}
    assert {f.rule_id for f in report.findings} == {
        "repository.env-not-ignored",
        "repository.committed-secret",
    }
    assert all(Section.REPOSITORY.value in f.rule_id for f in report.findings)


def test_subdirectory_scans_the_whole_work_tree(repo: Path) -> None:
    (repo / "sub").mkdir()
    (repo / ".env").write_text("A=1\n")
    snapshot = collect_repository(repo / "sub")
    assert snapshot.root == repo.resolve()
    assert [e.path for e in snapshot.env_files] == [".env"]


def test_a_committed_baseline_does_not_report_its_own_hashes(repo: Path) -> None:
    (repo / "settings.py").write_text(f'KEY = "{AWS_LIKE_KEY}"\n')
    commit_all(repo)
    [found] = collect_repository(repo).secrets
    baseline = {"results": {"settings.py": [{"hashed_secret": found.hashed, "type": found.kind}]}}
    (repo / ".secrets.baseline").write_text(json.dumps(baseline, indent=2))
    commit_all(repo)
    assert collect_repository(repo).secrets == ()
    assert failed_ids(repo) == {}


def test_a_repository_git_cannot_list_is_skipped_not_passed(repo: Path) -> None:
    (repo / "settings.py").write_text(f'KEY = "{AWS_LIKE_KEY}"\n')
    commit_all(repo)
    (repo / ".git" / "index").write_bytes(b"corrupt")  # rev-parse still works, ls-files fails
    report = run_check(None, Policy(), repo=repo)
    assert {f.status for f in report.findings} == {"skip"}
    assert all("git ls-files" in f.evidence for f in report.findings)


@pytest.mark.slow
def test_this_project_passes_its_own_repository_rules() -> None:
    """Fixture values in tests and the vendored OpenAPI document look key-like to detect-secrets.
    A new one fails here: mark it `# pragma: allowlist secret`, or (in a file you cannot comment)
    run `.venv/bin/detect-secrets scan --baseline .secrets.baseline` and review the new entries."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    failures = [f.evidence for f in run_check(None, Policy(), repo=root).findings if f.failed]
    assert failures == []


def _commit_at(repo: Path, when: str) -> None:
    env = {
        **__import__("os").environ,
        "GIT_COMMITTER_DATE": when,
        "GIT_AUTHOR_DATE": when,
    }
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "c"],
        cwd=repo,
        check=True,
        capture_output=True,
        env=env,
    )


def _real_baseline(repo: Path, generated_at: str) -> dict:
    """What `detect-secrets scan` writes (its own code, in process), dated `generated_at`."""
    from detect_secrets.core import baseline as ds_baseline
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import default_settings

    with default_settings():
        secrets = SecretsCollection(root=str(repo))
        for path in sorted(repo.glob("*.py")):
            secrets.scan_file(path.name)
        data = ds_baseline.format_for_output(secrets)
    data["generated_at"] = generated_at
    return data


def test_unchanged_files_come_from_the_baseline_and_changed_ones_are_scanned(repo: Path) -> None:
    (repo / "old.py").write_text(f'KEY = "{AWS_LIKE_KEY}"\n')
    (repo / "quiet.py").write_text("x = 1\n")
    (repo / "later.py").write_text("y = 2\n")
    _commit_at(repo, "2026-01-01T00:00:00Z")
    baseline = _real_baseline(repo, "2026-01-02T00:00:00Z")
    (repo / ".secrets.baseline").write_text(json.dumps(baseline, indent=2))
    _commit_at(repo, "2026-01-02T00:01:00Z")

    snap = collect_repository(repo)
    assert (snap.files_scanned, snap.files_from_baseline) == (3, 3)
    assert snap.secrets == ()  # the baseline's entry, reviewed: silenced as when scanned

    # Marked a real secret in the review: still reported, though the file was not scanned.
    baseline["results"]["old.py"][0]["is_secret"] = True
    (repo / ".secrets.baseline").write_text(json.dumps(baseline, indent=2))
    _commit_at(repo, "2026-01-02T00:02:00Z")
    assert [s.path for s in collect_repository(repo).secrets] == ["old.py"]

    # A file committed after the baseline was generated, and one edited now, are scanned.
    (repo / "later.py").write_text(f'KEY = "{AWS_LIKE_KEY}"\n')
    _commit_at(repo, "2026-01-03T00:00:00Z")
    (repo / "quiet.py").write_text(f'OTHER = "{AWS_LIKE_KEY[:-1]}Q"\n')
    snap = collect_repository(repo)
    assert snap.files_from_baseline == 1
    assert sorted(s.path for s in snap.secrets) == ["later.py", "old.py", "quiet.py"]


def test_a_baseline_made_with_other_plugins_or_not_committed_vouches_for_nothing(
    repo: Path,
) -> None:
    (repo / "a.py").write_text("x = 1\n")
    _commit_at(repo, "2026-01-01T00:00:00Z")
    baseline = _real_baseline(repo, "2026-01-02T00:00:00Z")
    (repo / ".secrets.baseline").write_text(json.dumps(baseline))
    assert collect_repository(repo).files_from_baseline == 0  # not committed
    baseline["plugins_used"] = baseline["plugins_used"][:3]
    (repo / ".secrets.baseline").write_text(json.dumps(baseline))
    _commit_at(repo, "2026-01-02T00:01:00Z")
    assert collect_repository(repo).files_from_baseline == 0


def test_the_scan_cache_serves_unchanged_content_only(repo: Path) -> None:
    (repo / "a.py").write_text("x = 1\n")
    (repo / "b.py").write_text(f'KEY = "{AWS_LIKE_KEY}"\n')
    commit_all(repo)
    first = collect_repository(repo)
    assert (first.files_scanned, first.files_from_cache) == (2, 0)
    second = collect_repository(repo)
    assert (second.files_scanned, second.files_from_cache) == (2, 2)
    assert second.secrets == first.secrets
    (repo / "a.py").write_text(f'KEY2 = "{AWS_LIKE_KEY[:-1]}Q"\n')  # edited, not committed
    third = collect_repository(repo)
    assert third.files_from_cache == 1
    assert sorted(s.path for s in third.secrets) == ["a.py", "b.py"]
    assert (repo / ".git" / "instantly-guard" / "scan-cache.json").is_file()
    (repo / "a.py").write_text("x = 1\n")
    (repo / "b.py").write_text("y = 2\n")
    report = run_check(None, Policy(), repo=repo)
    [passed] = [f for f in report.findings if f.rule_id == "repository.committed-secret"]
    assert passed.evidence == "2 tracked files checked (2 scanned), nothing key-like"
    again = run_check(None, Policy(), repo=repo)
    [cached] = [f for f in again.findings if f.rule_id == "repository.committed-secret"]
    assert "(0 scanned, 2 unchanged since the last scan)" in cached.evidence
