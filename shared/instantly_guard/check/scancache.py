"""Scan less without detecting less: reuse what is already known about a file's exact content.

Two sources, both exact for the content they describe:

- the committed detect-secrets baseline (`.secrets.baseline`): a tracked file that has not changed
  since the baseline was generated is described by it (its entries are the findings, then filtered
  the usual way). "Not changed since" is decided by git: the file is the same in the working tree
  as in the commit that last changed the baseline, and no first-parent commit (merges included,
  against their first parent) committed after the baseline's `generated_at` touched it. Used only
  when the baseline is committed and clean and was made with the same plugins and no filter we
  do not also apply, so a review of the baseline is trusted only for the tree it describes.
- a cache in the git directory (`<git dir>/instantly-guard/scan-cache.json`, never committed):
  findings per (path, SHA-256 of the content), valid for one detect-secrets version and settings.

Everything else is scanned. `Coverage` says how many files came from where.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from instantly_guard.check.model import CommittedSecret

# Filters a baseline may have used that we do not run: the baseline file's own, and the one that
# drops secrets a plugin verified online as invalid (we never verify: no network).
_HARMLESS_FILTERS: Final = frozenset(
    {
        "detect_secrets.filters.common.is_baseline_file",
        "detect_secrets.filters.common.is_ignored_due_to_verification_policies",
    }
)
_CACHE_FILE: Final = "instantly-guard/scan-cache.json"


@dataclass(frozen=True, slots=True)
class Coverage:
    """How the tracked files were covered: scanned now, taken from the baseline, or from cache."""

    scanned: int = 0
    from_baseline: int = 0
    from_cache: int = 0

    @property
    def total(self) -> int:
        return self.scanned + self.from_baseline + self.from_cache


def settings_fingerprint() -> dict[str, Any]:
    """detect-secrets' version and its active plugins and filters (call inside its settings)."""
    from detect_secrets.__version__ import VERSION
    from detect_secrets.settings import get_settings

    return {"version": VERSION, **get_settings().json()}


def baseline_covered(
    git: str, root: Path, baseline_name: str, baseline: Mapping[str, Any], ours: Mapping[str, Any]
) -> set[str]:
    """Tracked paths the committed baseline describes exactly (empty when it cannot vouch)."""
    if baseline.get("plugins_used") != ours.get("plugins_used"):
        return set()
    our_filters = {f.get("path") for f in ours.get("filters_used", [])} | _HARMLESS_FILTERS
    if any(f.get("path") not in our_filters for f in baseline.get("filters_used", [])):
        return set()
    try:
        generated = datetime.fromisoformat(str(baseline["generated_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return set()
    commit = git_output(git, root, ["log", "-1", "--format=%H", "--", baseline_name])
    if not commit or not commit.strip():
        return set()  # not committed: nothing says which tree it describes
    commit = commit.strip()
    changed = git_output(git, root, ["diff", "--name-only", "-z", commit, "--"])
    later = git_output(
        git,
        root,
        [
            "log",
            "--first-parent",
            "-m",
            f"--since={generated.isoformat()}",
            "--name-only",
            "--format=",
            "-z",
            commit,
        ],
    )
    tracked = git_output(git, root, ["ls-tree", "-r", "-z", "--name-only", commit])
    if changed is None or later is None or tracked is None:
        return set()
    if baseline_name in _paths(changed):
        return set()  # edited since it was committed: it describes a tree we do not know
    # (The commit that stored the baseline is usually later than `generated_at`: it is in
    # `later`, and so is every file committed with it, which is the safe side.)
    dirty = set(_paths(changed)) | set(_paths(later))
    return set(_paths(tracked)) - dirty - {baseline_name}


def baseline_findings(baseline: Mapping[str, Any], paths: Iterable[str]) -> list[CommittedSecret]:
    """The baseline's entries for `paths`, as findings (filtered afterwards like scanned ones)."""
    results = baseline.get("results")
    if not isinstance(results, dict):
        return []
    found = []
    for path in paths:
        for item in results.get(path) or []:
            if isinstance(item, dict):
                found.append(
                    CommittedSecret(
                        path=path,
                        line=int(item.get("line_number") or 0),
                        kind=str(item.get("type")),
                        hashed=str(item.get("hashed_secret")),
                    )
                )
    return found


class ScanCache:
    """Findings per (path, content digest), in the git directory; invalid for other settings."""

    def __init__(self, path: Path | None, fingerprint: Mapping[str, Any]) -> None:
        self._path = path
        self._stamp = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        self._old: dict[str, list[list[Any]]] = {}
        self._new: dict[str, list[list[Any]]] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("stamp") == self._stamp:
                    self._old = dict(data.get("files") or {})

    @staticmethod
    def key(path: str, content: bytes) -> str:
        return f"{path}\0{hashlib.sha256(content).hexdigest()}"

    def get(self, key: str) -> list[CommittedSecret] | None:
        entry = self._old.get(key)
        if entry is None:
            return None
        self._new[key] = entry
        path = key.split("\0", 1)[0]
        return [CommittedSecret(path, int(line), str(kind), str(h)) for line, kind, h in entry]

    def put(self, key: str, found: Sequence[CommittedSecret]) -> None:
        self._new[key] = [[s.line, s.kind, s.hashed] for s in found]

    def save(self) -> None:
        """Write the entries used or added this run (so the cache holds the tree's files only)."""
        if self._path is None or self._new == self._old:
            return
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"stamp": self._stamp, "files": self._new}), encoding="utf-8")
            tmp.replace(self._path)


def cache_path(git: str, root: Path) -> Path | None:
    """`<git dir>/instantly-guard/scan-cache.json` (per worktree), or None outside git."""
    out = git_output(git, root, ["rev-parse", "--git-path", _CACHE_FILE])
    if not out or not out.strip():
        return None
    path = Path(out.strip())
    return path if path.is_absolute() else root / path


def git_output(git: str, root: Path, args: list[str]) -> str | None:
    """stdout of `git -C root args`, or None when git fails (not a repository, a timeout)."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git, "-C", str(root), *args],
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", "surrogateescape")


def _paths(output: str) -> list[str]:
    return [p for p in output.replace("\n", "\0").split("\0") if p]
