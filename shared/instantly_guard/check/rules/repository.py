"""Local repository rules: `.env` files git does not ignore, key-like strings in tracked files."""

from __future__ import annotations

import fnmatch

from instantly_guard.check.model import FileLocation, RepoSnapshot, Section, Severity, Snapshot
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules.base import Failure, Outcome, plural, rule


@rule(
    "repository.env-not-ignored",
    title=".env files not ignored by git",
    severity=Severity.HIGH,
    section=Section.REPOSITORY,
    fix=(
        "Add the file to .gitignore; if it is tracked, `git rm --cached` it and rotate every "
        "secret it ever held (it stays in the history)."
    ),
    help=(
        ".env files hold API keys and webhook secrets. One that git does not ignore ends up in a "
        "commit, and from there on every clone, fork and CI cache. Example files "
        "(env_file_examples) are exempt."
    ),
)
def env_not_ignored(snapshot: Snapshot, policy: Policy) -> Outcome:
    repo = snapshot.repository
    files = repo.env_files if repo else ()
    failures = []
    for env in files:
        name = env.path.rsplit("/", 1)[-1]
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.env_file_examples):
            continue
        if env.tracked:
            evidence = f"{env.path} is committed (tracked by git)"
        elif not env.ignored:
            evidence = f"{env.path} is not ignored by git (git check-ignore finds no rule)"
        else:
            continue
        failures.append(Failure(evidence, subject=env.path, location=FileLocation(env.path)))
    return Outcome(failures, f"{plural(len(files), '.env file')}, all ignored and untracked")


@rule(
    "repository.committed-secret",
    title="Key-like strings in tracked files",
    severity=Severity.CRITICAL,
    section=Section.REPOSITORY,
    fix=(
        "Revoke the credential first (for an Instantly key: `instantly-guard rotate NAME "
        "--revoke-now`), then remove it from the file. Mark a known false positive with an inline "
        "`pragma: allowlist secret` comment."
    ),
    help=(
        "detect-secrets (Yelp's maintained scanner, default plugins and filters) found a "
        "string that looks like a credential in a file git tracks. Once pushed, assume it leaked."
    ),
)
def committed_secret(snapshot: Snapshot, policy: Policy) -> Outcome:
    repo = snapshot.repository
    found = repo.secrets if repo else ()
    failures = [
        Failure(
            f"{secret.kind} in {secret.path}:{secret.line} (sha1 {secret.hashed[:12]})",
            subject=f"{secret.path}:{secret.line}",
            location=FileLocation(secret.path, secret.line),
        )
        for secret in found
    ]
    return Outcome(failures, f"{scanned_text(repo)}, nothing key-like")


def scanned_text(repo: RepoSnapshot | None) -> str:
    """`276 tracked files checked (12 scanned, 169 unchanged since the baseline, 95 cached)`."""
    if repo is None:
        return "0 tracked files checked"
    fresh = repo.files_scanned - repo.files_from_baseline - repo.files_from_cache
    parts = [f"{fresh} scanned"]
    if repo.files_from_baseline:
        parts.append(f"{repo.files_from_baseline} unchanged since .secrets.baseline")
    if repo.files_from_cache:
        parts.append(f"{repo.files_from_cache} unchanged since the last scan")
    return f"{plural(repo.files_scanned, 'tracked file')} checked ({', '.join(parts)})"


RULES = (env_not_ignored, committed_secret)
