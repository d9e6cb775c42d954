"""Choosing and naming a secret store from configuration, for every function and the CLI.

`open_store` imports Google's client library only for the gcp backend, so a local run (and a
function that never reads Secret Manager) does not pay for it.
"""

from __future__ import annotations

import re
from typing import Any

from instantly_guard.secrets.base import SecretStore
from instantly_guard.settings import Backend, CommonSettings

_REFERENCE = re.compile(
    r"^(?:projects/(?P<project>[^/]+)/secrets/)?(?P<name>[A-Za-z0-9_-]{1,255})"
    r"(?:/versions/[^/]+)?$"
)


def parse_secret_reference(text: str) -> tuple[str, str | None] | None:
    """`NAME` or `projects/P/secrets/NAME` (a trailing `/versions/V` is ignored: consumers read
    alias `current`) -> (name, project or None); None when `text` is neither."""
    match = _REFERENCE.fullmatch(text.strip())
    if match is None:
        return None
    return match.group("name"), match.group("project")


def open_store(
    common: CommonSettings, *, project: str | None = None, **gcp_options: Any
) -> SecretStore:
    """The store `GUARD_BACKEND` names: Secret Manager in `project` (default the settings'
    project), or the local store under `GUARD_STATE_DIR/secrets`."""
    if common.backend is Backend.GCP:
        from instantly_guard.secrets.gcp import GcpSecretStore

        gcp_options.setdefault("location", common.secret_location)
        return GcpSecretStore(project or common.project or "", **gcp_options)
    from instantly_guard.secrets.local import LocalSecretStore

    return LocalSecretStore(common.state_dir / "secrets")
