"""Errors about a secret's name that say where we looked and what to do next.

"secret X not found" is a dead end; these name the store, offer the closest managed names
("did you mean"), and say how to declare the secret when it is simply not there yet.
"""

from __future__ import annotations

import difflib

from instantly_guard.errors import ConfigError
from instantly_guard.rotation.model import MANAGED_LABELS
from instantly_guard.secrets.base import SecretStore


def store_name(store: SecretStore) -> str:
    """`the local store at DIR` or `Secret Manager in project P`, for messages."""
    project = getattr(store, "project", None)
    if isinstance(project, str) and project:
        return f"Secret Manager in project {project}"
    root = getattr(store, "root", None) or getattr(store, "_root", None)
    return f"the local store at {root}" if root is not None else "the secret store"


def managed_names(store: SecretStore) -> list[str]:
    """Names of the managed secrets, or [] when they cannot be listed (the error is about the
    name; a listing failure must not replace it)."""
    try:
        return sorted(meta.name for meta in store.list_secrets(MANAGED_LABELS))
    except Exception:
        return []


def unknown_secret(store: SecretStore, name: str, *, managed: bool = True) -> ConfigError:
    """The error for a secret `name` that is not in `store` (or, `managed` false, that exists but
    does not carry our label)."""
    where = store_name(store)
    names = [n for n in managed_names(store) if n != name]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not managed:
        first = (
            f"secret {name} exists in {where} but is not managed by instantly-guard; "
            f"declare it first: instantly-guard secrets declare {name} --update --scopes ..."
        )
    else:
        first = (
            f"secret {name} is not declared in {where}; declare it first: "
            f"instantly-guard secrets declare {name} --scopes ... (or --profile NAME)"
        )
    parts = [first]
    if close:
        parts.append(f"did you mean {' or '.join(close)}?")
    elif names:
        parts.append(f"managed secrets there: {', '.join(names)}")
    else:
        parts.append(
            "no managed secret is declared there yet (check GUARD_BACKEND / GUARD_STATE_DIR)"
        )
    return ConfigError(["; ".join(parts)])
