"""Read the local repository for the repository rules: `.env` files and committed secrets.

Uses git itself for what git knows (`ls-files` for tracked and untracked files, `check-ignore`
for ignore rules, so nested .gitignore files, `info/exclude` and the global excludes file all
count) and Yelp's detect-secrets, with its default plugins and filters, for key-like strings,
plus our own detector for Instantly keys (`check.instantly_key`), run on every tracked file
whatever covered it for detect-secrets (one regex: cheap, and no baseline made without it can
vouch for a file).
Only tracked files are scanned: an untracked file has not leaked through git (yet). Known false
positives are silenced the detect-secrets way: an inline `pragma: allowlist secret` comment, or a
`.secrets.baseline` at the repository root (`detect-secrets scan > .secrets.baseline`, then
`detect-secrets audit .secrets.baseline`): a finding listed there (same file, same hash) is not
reported unless the audit marked it a real secret (`"is_secret": true`).

Files whose exact content is already described, by the committed baseline or by the scan cache
in the git directory, are not scanned again (`check.scancache`): the same findings, much faster.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instantly_guard.check.model import CommittedSecret, EnvFile, RepoSnapshot, SectionError
from instantly_guard.check.scancache import (
    Coverage,
    ScanCache,
    baseline_covered,
    baseline_findings,
    cache_path,
    git_output,
    settings_fingerprint,
)
from instantly_guard.errors import GuardError

ENV_PATTERNS = (".env", ".env.*", "*.env")
BASELINE = ".secrets.baseline"
MAX_SCAN_BYTES = 2 * 1024 * 1024
"""Larger tracked files (data, vendored bundles) are not scanned: keys live in small files."""
_GIT_TIMEOUT_S = 60


class RepositoryUnreadableError(GuardError):
    """The path is not a git work tree, or git is missing. `error` explains it for the report."""

    def __init__(self, error: SectionError) -> None:
        self.error = error
        super().__init__(error.message)


def collect_repository(path: Path) -> RepoSnapshot:
    """Scan the git work tree containing `path`. Raises `RepositoryUnreadableError`."""
    git = shutil.which("git")
    if git is None:
        raise RepositoryUnreadableError(
            SectionError("git is not installed", "Install git, or pass --no-repo.")
        )
    top = git_output(git, path, ["rev-parse", "--show-toplevel"])
    if top is None:
        raise RepositoryUnreadableError(
            SectionError(
                f"{path} is not inside a git work tree",
                "Pass --repo PATH pointing at your repository, or --no-repo.",
            )
        )
    root = Path(top.strip())
    tracked = _listing(git, root, ["--cached"])
    untracked = _listing(git, root, ["--others", "--exclude-standard"])
    # Ignored .env files are candidates too (directories collapsed: their contents are ignored).
    ignored_listing = _listing(
        git, root, ["--others", "--ignored", "--exclude-standard", "--directory"]
    )
    tracked_set = set(tracked)
    candidates = sorted({p for p in (*tracked, *untracked, *ignored_listing) if is_env_file(p)})
    ignored = _check_ignore(git, root, candidates)
    env_files = tuple(
        EnvFile(path=p, tracked=p in tracked_set, ignored=p in ignored) for p in candidates
    )
    # The baseline lists detect-secrets' hashes: scanned, it would report itself.
    secrets, coverage = scan_secrets(root, [p for p in tracked if p != BASELINE], git=git)
    known = baseline_entries(root / BASELINE)
    secrets = tuple(s for s in secrets if (s.path, s.hashed) not in known)
    return RepoSnapshot(
        root=root,
        env_files=env_files,
        secrets=secrets,
        files_scanned=coverage.total,
        files_from_baseline=coverage.from_baseline,
        files_from_cache=coverage.from_cache,
    )


def is_env_file(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return not path.endswith("/") and any(fnmatch.fnmatchcase(name, p) for p in ENV_PATTERNS)


def scan_secrets(
    root: Path, files: Sequence[str], *, git: str | None = None
) -> tuple[tuple[CommittedSecret, ...], Coverage]:
    """Run detect-secrets over `files` (relative to `root`), one by one in this process, except
    those whose content the committed baseline or the scan cache already describes (`git`
    given: see `check.scancache`).

    (`SecretsCollection.scan_files` would fork a multiprocessing pool: not what a CLI run from a
    function or a test wants.) Returns the findings, sorted, and how the files were covered.
    """
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import default_settings

    found: set[CommittedSecret] = set()
    scanned = from_baseline = from_cache = 0
    with default_settings():
        fingerprint = settings_fingerprint()
        covered: set[str] = set()
        cache = ScanCache(None, fingerprint)
        if git is not None:
            baseline = _load_json(root / BASELINE)
            if baseline is not None:
                covered = baseline_covered(git, root, BASELINE, baseline, fingerprint)
                covered &= set(files)
                found.update(baseline_findings(baseline, covered))
            cache = ScanCache(cache_path(git, root), fingerprint)
        for name in files:
            full = root / name
            try:
                if full.is_symlink() or not full.is_file() or full.stat().st_size > MAX_SCAN_BYTES:
                    continue
            except OSError:
                continue
            if name in covered:
                found.update(_instantly_keys(name, full))
                from_baseline += 1
                continue
            try:
                key = ScanCache.key(name, full.read_bytes())
            except OSError:
                continue
            found.update(_instantly_keys(name, full))
            cached = cache.get(key)
            if cached is not None:
                found.update(cached)
                from_cache += 1
                continue
            collection = SecretsCollection(root=str(root))
            collection.scan_file(name)
            these = _secrets_of(collection)
            cache.put(key, these)
            found.update(these)
            scanned += 1
        cache.save()
    ordered = sorted(found, key=lambda s: (s.path, s.line, s.kind))
    return tuple(ordered), Coverage(scanned, from_baseline, from_cache)


_ALLOWLIST_SAME_LINE = "pragma: allowlist secret"
_ALLOWLIST_NEXT_LINE = "pragma: allowlist nextline secret"


def _instantly_keys(name: str, full: Path) -> list[CommittedSecret]:
    """Instantly-format keys in one file, any file type; a line allowlisted the detect-secrets
    way (`pragma: allowlist secret`, or `... nextline secret` on the line before) is skipped.
    One pass of the pattern over the whole text: lines are looked at only around a match."""
    from detect_secrets.core.potential_secret import PotentialSecret

    from instantly_guard.check.instantly_key import SECRET_TYPE, find_keys_at

    try:
        text = full.read_bytes().decode("utf-8", "replace")
    except OSError:
        return []
    found: list[CommittedSecret] = []
    for key, start in find_keys_at(text):
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        previous = text[text.rfind("\n", 0, max(line_start - 1, 0)) + 1 : max(line_start - 1, 0)]
        if _ALLOWLIST_SAME_LINE in line or _ALLOWLIST_NEXT_LINE in previous:
            continue
        number = text.count("\n", 0, start) + 1
        found.append(
            CommittedSecret(
                path=name, line=number, kind=SECRET_TYPE, hashed=PotentialSecret.hash_secret(key)
            )
        )
    return found


def _secrets_of(collection: Any) -> list[CommittedSecret]:
    return [
        CommittedSecret(
            path=Path(filename).as_posix(),
            line=int(secret.line_number),
            kind=str(secret.type),
            hashed=str(secret.secret_hash),
        )
        for filename, secrets in collection.data.items()
        for secret in secrets
    ]


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def baseline_entries(path: Path) -> set[tuple[str, str]]:
    """(file, hashed secret) pairs a detect-secrets baseline accepts; empty when there is none.

    An entry the audit marked `"is_secret": true` is a confirmed secret: it stays reported."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        return set()
    return {
        (str(filename), str(item.get("hashed_secret")))
        for filename, items in results.items()
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict) and item.get("is_secret") is not True
    }


def _check_ignore(git: str, root: Path, paths: Sequence[str]) -> set[str]:
    """The subset of `paths` an ignore rule matches (`--no-index`: tracked files are judged by
    the rules too, so a committed .env that is also ignored is told apart from one that is not)."""
    if not paths:
        return set()
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell; paths come from git itself
        [git, "-C", str(root), "check-ignore", "--no-index", "-z", "--stdin"],
        input="\0".join(paths).encode() + b"\0",
        capture_output=True,
        timeout=_GIT_TIMEOUT_S,
        check=False,
    )
    # Exit 1 means "nothing ignored"; 128 a fatal error, which leaves us with no information.
    if result.returncode not in (0, 1):
        return set()
    return set(_split(result.stdout.decode("utf-8", "surrogateescape")))


def _listing(git: str, root: Path, args: list[str]) -> list[str]:
    """`git ls-files -z ARGS`. A failure raises: an empty listing would pass the rules silently."""
    output = git_output(git, root, ["ls-files", "-z", *args])
    if output is None:
        raise RepositoryUnreadableError(
            SectionError(
                f"git ls-files {' '.join(args)} failed in {root}",
                "Run `git status` there to see why (a corrupt index, a lock, a timeout), "
                "or pass --no-repo.",
            )
        )
    return _split(output)


def _split(output: str | None) -> list[str]:
    return [p for p in (output or "").split("\0") if p]
