"""Secret store port and backends. See `base` for the shared semantics."""

from __future__ import annotations

from instantly_guard.secrets.base import (
    LATEST,
    SecretMetadata,
    SecretNotFoundError,
    SecretStore,
    VersionInfo,
    VersionState,
    VersionUnavailableError,
)

__all__ = [
    "LATEST",
    "SecretMetadata",
    "SecretNotFoundError",
    "SecretStore",
    "VersionInfo",
    "VersionState",
    "VersionUnavailableError",
]
