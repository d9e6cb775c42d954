"""The secret store port: what rotation and the key provider need from Secret Manager.

Two backends implement it with the same semantics: `gcp.GcpSecretStore` (Google Secret Manager)
and `local.LocalSecretStore` (files under `GUARD_STATE_DIR/secrets`, for `make run` and tests).

Semantics shared by both, modelled on Secret Manager:
- a secret has labels (set at creation), annotations and version aliases (both replaced together by
  `update`, guarded by the secret's `etag`: a stale etag raises `ConflictError`);
- versions are numbered from 1 in the order they are added; adding one never changes the secret's
  etag; the newest version is what `latest` names, whatever its state;
- a version is ENABLED, DISABLED (metadata kept, value unreadable) or DESTROYED (value gone);
- `access` takes a version number, an alias, or `latest`.

Errors: `SecretNotFoundError` (no such secret, version or alias), `VersionUnavailableError`
(the version is disabled or destroyed), `ConflictError` (etag mismatch), `BackendError` otherwise,
with `retryable` telling whether another attempt may help.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

from instantly_guard.errors import BackendError
from instantly_guard.secret import Secret

LATEST: Final = "latest"

_SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_ANNOTATION_KEY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
ANNOTATIONS_MAX_BYTES: Final = 16 * 1024
"""Secret Manager's bound on a secret's annotations: keys plus values (UTF-8 bytes) must total
*strictly less* than this."""
PAYLOAD_MAX_BYTES: Final = 64 * 1024


class SecretNotFoundError(BackendError):
    """The secret, the version or the alias does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class VersionUnavailableError(BackendError):
    """The version exists but is disabled or destroyed, so its value cannot be read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class VersionState(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"
    DESTROYED = "DESTROYED"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version's metadata (never its value)."""

    version: str
    state: VersionState
    create_time: datetime


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """A secret's metadata: labels, annotations, aliases (alias -> version number) and etag."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    etag: str = ""
    create_time: datetime | None = None
    rotation: RotationSchedule | None = None

    @property
    def rotation_period(self) -> timedelta | None:
        """Secret Manager's rotation period, when the secret has a schedule."""
        return self.rotation.period if self.rotation is not None else None


@dataclass(frozen=True, slots=True)
class RotationSchedule:
    """When Secret Manager notifies the secret's topics to rotate it (what Terraform declares);
    read-only here: only `verify` looks at it."""

    period: timedelta | None
    next_time: datetime | None
    topics: tuple[str, ...] = ()


@runtime_checkable
class SecretStore(Protocol):
    """Port over a secret store. Names are short secret ids (`instantly-audit-key`), not paths."""

    def create_secret(
        self, name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> SecretMetadata:
        """Create a secret with no version. Raises ConflictError if it already exists."""
        ...

    def get(self, name: str) -> SecretMetadata:
        """The secret's metadata, with the etag to pass to `update`."""
        ...

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every version, oldest first, with its state."""
        ...

    def access(self, name: str, version: str = LATEST) -> Secret:
        """The value of a version given by number, alias or `latest`."""
        ...

    def add_version(self, name: str, value: Secret) -> str:
        """Store `value` as a new version (it becomes `latest`) and return its number."""
        ...

    def update(
        self,
        name: str,
        *,
        aliases: Mapping[str, str],
        annotations: Mapping[str, str],
        etag: str,
    ) -> SecretMetadata:
        """Replace aliases and annotations together if the secret's etag is still `etag`.

        Raises ConflictError when it is not (somebody else changed the secret since it was read).
        """
        ...

    def disable_version(self, name: str, version: str) -> None:
        """Disable a version (idempotent). A destroyed version stays destroyed."""
        ...

    def destroy_version(self, name: str, version: str) -> None:
        """Destroy a version's value for good (idempotent). Aliases pointing at it are dropped."""
        ...

    def list_secrets(self, labels: Mapping[str, str] | None = None) -> Iterator[SecretMetadata]:
        """Secrets whose labels include every item of `labels` (all secrets when None)."""
        ...

    def delete_secret(self, name: str, *, etag: str) -> None:
        """Delete the secret and every version if its etag is still `etag` (ConflictError if not;
        SecretNotFoundError if it is gone). `secrets undeclare` is the only caller."""
        ...


def check_secret_name(name: str) -> str:
    """Secret Manager's rule for secret ids; it also keeps names safe as local file names."""
    if not _SECRET_NAME.fullmatch(name):
        raise ValueError(
            f"invalid secret name {name!r}: 1-255 letters, digits, '-' or '_' expected"
        )
    return name


def check_aliases(aliases: Mapping[str, str]) -> None:
    for alias, version in aliases.items():
        if alias in {LATEST, "NEW"} or not _ALIAS.fullmatch(alias):
            raise ValueError(f"invalid version alias {alias!r}")
        if not version.isdigit():
            raise ValueError(f"alias {alias!r} must name a version number, not {version!r}")


def annotations_size(annotations: Mapping[str, str]) -> int:
    """What Secret Manager counts against `ANNOTATIONS_MAX_BYTES`: keys plus values, in bytes."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())


def check_annotations(annotations: Mapping[str, str]) -> None:
    for key in annotations:
        if not _ANNOTATION_KEY.fullmatch(key):
            raise ValueError(f"invalid annotation key {key!r}")
    size = annotations_size(annotations)
    if size >= ANNOTATIONS_MAX_BYTES:
        raise ValueError(
            f"annotations take {size} bytes; Secret Manager needs less than {ANNOTATIONS_MAX_BYTES}"
        )


def check_labels(labels: Mapping[str, str]) -> None:
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise ValueError(f"invalid label {key}={value!r}")
