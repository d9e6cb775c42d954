"""The Instantly-key detector: the real key format found in any file type, by the repository scan
and by detect-secrets itself. Every key here is synthetic, built at run time (this file holds
nothing key-like)."""

from __future__ import annotations

import base64
import json
import random
import shutil
import string
import uuid
from pathlib import Path

import pytest
from tests.check.test_check_repository import (
    _commit_at,
    _real_baseline,
    commit_all,
    failed_ids,
    git,
)

from instantly_guard.check.instantly_key import (
    SECRET_TYPE,
    InstantlyKeyDetector,
    find_keys,
    is_instantly_key,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    return root


def synthetic_key(seed: int = 0) -> str:
    """A key in Instantly's format: base64 of `<UUIDv4>:<12 alphanumerics>` (68 characters)."""
    rng = random.Random(seed)
    ident = uuid.UUID(int=rng.getrandbits(128), version=4)
    tail = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(12))
    return base64.b64encode(f"{ident}:{tail}".encode()).decode()


def test_a_synthetic_key_has_the_real_shape() -> None:
    key = synthetic_key()
    assert len(key) == 68
    assert key.endswith("==")
    assert is_instantly_key(key)


def test_base64_of_the_same_length_that_is_not_a_key_is_not_flagged() -> None:
    not_uuid = base64.b64encode(b"x" * 36 + b":" + b"A" * 12).decode()
    uuid1 = base64.b64encode(f"{uuid.uuid1()}:{'A' * 12}".encode()).decode()
    assert len(not_uuid) == len(uuid1) == 68
    assert not is_instantly_key(not_uuid)
    assert not is_instantly_key(uuid1)
    assert list(find_keys(f"sha: {not_uuid} and {synthetic_key()}x")) == []


LEAKS = {
    "docs/setup.md": "Call it:\n\n```\nAuthorization: Bearer {key}\n```\n",
    "scripts/list.sh": "curl -H 'Authorization: Bearer {key}' https://api.instantly.ai/api/v2/x\n",
    "deploy/app.env": "INSTANTLY_API_KEY={key}\n",
    "config/values.yaml": "instantly:\n  api_key: {key}\n",
    "config/settings.json": '{{"instantly": {{"token": "{key}"}}}}',
    "NOTES.txt": "the key is {key} (rotate it)\n",
}


def test_the_repository_scan_finds_the_key_in_every_file_type(repo: Path) -> None:
    keys = {}
    for index, (name, template) in enumerate(LEAKS.items()):
        keys[name] = synthetic_key(index)
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(key=keys[name]))
    json.loads((repo / "config/settings.json").read_text())  # the JSON case is valid JSON
    commit_all(repo)

    evidence = failed_ids(repo)["repository.committed-secret"]
    for name in LEAKS:
        assert any(name in e and SECRET_TYPE in e for e in evidence), "\n".join(evidence)
    assert not any(k in e for e in evidence for k in keys.values())


def test_a_key_is_reported_at_its_line(repo: Path) -> None:
    (repo / "notes.md").write_text(f"one\ntwo\n\nthe key: {synthetic_key()} here\n")
    commit_all(repo)
    evidence = failed_ids(repo)["repository.committed-secret"]
    assert any(f"{SECRET_TYPE} in notes.md:4 " in e for e in evidence), evidence


def test_an_allowlisted_line_is_not_reported(repo: Path) -> None:
    (repo / "docs.md").write_text(f"Bearer {synthetic_key()}  <!-- pragma: allowlist secret -->\n")
    (repo / "next.md").write_text(
        f"# pragma: allowlist nextline secret\nBearer {synthetic_key(1)}\n"
    )
    commit_all(repo)
    assert "repository.committed-secret" not in failed_ids(repo)


def test_detect_secrets_loads_it_as_a_plugin(tmp_path: Path) -> None:
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import transient_settings

    import instantly_guard.check.instantly_key as module

    leak = tmp_path / "leak.md"
    leak.write_text(f"Authorization: Bearer {synthetic_key()}\n")
    plugin = {"name": InstantlyKeyDetector.__name__, "path": f"file://{module.__file__}"}
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class as mapping

    mapping.cache_clear()  # detect-secrets caches the plugin classes it found before
    try:
        with transient_settings({"plugins_used": [plugin]}):
            collection = SecretsCollection(root=str(tmp_path))
            collection.scan_file("leak.md")
    finally:
        mapping.cache_clear()
    assert [s.type for s in collection["leak.md"]] == [SECRET_TYPE]


def test_files_the_baseline_or_the_cache_vouch_for_are_still_searched(repo: Path) -> None:
    """A baseline made with detect-secrets' default plugins never looked for this format: a file
    it covers is still searched for Instantly keys (and so is a cached one)."""
    from instantly_guard.check.gitrepo import collect_repository

    (repo / "docs.py").write_text(f"# Authorization: Bearer {synthetic_key()}\n")
    _commit_at(repo, "2026-01-01T00:00:00Z")
    baseline = _real_baseline(repo, "2026-01-02T00:00:00Z")
    (repo / ".secrets.baseline").write_text(json.dumps(baseline, indent=2))
    _commit_at(repo, "2026-01-02T00:01:00Z")

    snap = collect_repository(repo)
    assert snap.files_from_baseline == 1
    assert [(s.path, s.kind) for s in snap.secrets] == [("docs.py", SECRET_TYPE)]
