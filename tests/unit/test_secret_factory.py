from pathlib import Path

import pytest

from instantly_guard.secrets.factory import open_store, parse_secret_reference
from instantly_guard.secrets.local import LocalSecretStore
from instantly_guard.settings import CommonSettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audit-exporter", ("audit-exporter", None)),
        ("projects/p-1/secrets/audit_exporter", ("audit_exporter", "p-1")),
        ("projects/p-1/secrets/audit-exporter/versions/3", ("audit-exporter", "p-1")),
        ("projects//secrets/x", None),
        ("a/b", None),
        ("", None),
    ],
)
def test_secret_references(text: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_secret_reference(text) == expected


def test_local_backend_opens_the_store_under_the_state_dir(tmp_path: Path) -> None:
    common = CommonSettings.from_env({"GUARD_BACKEND": "local", "GUARD_STATE_DIR": str(tmp_path)})
    store = open_store(common)
    assert isinstance(store, LocalSecretStore)
