"""Google Secret Manager backend of the secret store (google-cloud-secret-manager, gRPC).

Aliases and annotations are written with one `UpdateSecret` carrying the etag that was read and
the update mask `version_aliases,annotations`: Secret Manager answers FAILED_PRECONDITION on a
stale etag, mapped here to `ConflictError`. Payloads carry a CRC32C checksum both ways.
Imported only when `GUARD_BACKEND=gcp`, so local runs never load Google's client libraries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import google_crc32c
from google.api_core import exceptions as gexc
from google.cloud import secretmanager_v1
from google.protobuf import field_mask_pb2

from instantly_guard.errors import BackendError, ConflictError
from instantly_guard.google_errors import is_transient
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import (
    LATEST,
    PAYLOAD_MAX_BYTES,
    SecretMetadata,
    SecretNotFoundError,
    VersionInfo,
    VersionState,
    VersionUnavailableError,
    check_aliases,
    check_annotations,
    check_labels,
    check_secret_name,
)

T = TypeVar("T")

_STATES = {
    secretmanager_v1.SecretVersion.State.ENABLED: VersionState.ENABLED,
    secretmanager_v1.SecretVersion.State.DISABLED: VersionState.DISABLED,
    secretmanager_v1.SecretVersion.State.DESTROYED: VersionState.DESTROYED,
}


def _crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def _time(value: Any) -> datetime | None:
    # proto-plus gives Timestamp fields as DatetimeWithNanoseconds (a datetime), or None.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


class GcpSecretStore:
    """A `SecretStore` over Secret Manager in `project`.

    `client` is injected for tests (a real `SecretManagerServiceClient` on a channel to a local
    stand-in); by default one is created with Application Default Credentials.
    """

    def __init__(
        self,
        project: str,
        *,
        client: secretmanager_v1.SecretManagerServiceClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._project = project
        self._client = client or secretmanager_v1.SecretManagerServiceClient()
        self._timeout = timeout

    @property
    def project(self) -> str:
        return self._project

    def _path(self, name: str) -> str:
        return f"projects/{self._project}/secrets/{check_secret_name(name)}"

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        precondition: Callable[[str], BackendError] | None = None,
    ) -> T:
        """Run one RPC and map Google's errors into our tree (never leaking a value: RPC errors
        carry the resource name and the service's message only)."""
        try:
            return fn()
        except gexc.NotFound as exc:
            raise SecretNotFoundError(f"{what}: not found") from exc
        except gexc.AlreadyExists as exc:
            raise ConflictError(f"{what}: already exists") from exc
        except gexc.FailedPrecondition as exc:
            if precondition is not None:
                raise precondition(f"{what}: {exc.message}") from exc
            raise BackendError(f"{what}: {exc.message}", retryable=False) from exc
        except gexc.GoogleAPIError as exc:
            raise BackendError(f"{what}: {exc}", retryable=is_transient(exc)) from exc

    def _metadata(self, secret: secretmanager_v1.Secret) -> SecretMetadata:
        return SecretMetadata(
            name=secret.name.rsplit("/", 1)[-1],
            labels=dict(secret.labels),
            annotations=dict(secret.annotations),
            aliases={alias: str(number) for alias, number in secret.version_aliases.items()},
            etag=secret.etag,
            create_time=_time(secret.create_time),
            rotation_period=_period(secret),
        )

    def create_secret(
        self, name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> SecretMetadata:
        check_labels(labels)
        check_annotations(annotations)
        secret = secretmanager_v1.Secret(
            replication=secretmanager_v1.Replication(
                automatic=secretmanager_v1.Replication.Automatic()
            ),
            labels=dict(labels),
            annotations=dict(annotations),
        )
        created = self._call(
            f"create secret {name}",
            lambda: self._client.create_secret(
                request={
                    "parent": f"projects/{self._project}",
                    "secret_id": check_secret_name(name),
                    "secret": secret,
                },
                timeout=self._timeout,
            ),
        )
        return self._metadata(created)

    def get(self, name: str) -> SecretMetadata:
        secret = self._call(
            f"get secret {name}",
            lambda: self._client.get_secret(name=self._path(name), timeout=self._timeout),
        )
        return self._metadata(secret)

    def list_versions(self, name: str) -> list[VersionInfo]:
        def fetch() -> list[VersionInfo]:
            pager = self._client.list_secret_versions(
                request={"parent": self._path(name), "page_size": 100}, timeout=self._timeout
            )
            versions = []
            for item in pager:
                created = _time(item.create_time) or datetime.fromtimestamp(0, UTC)
                versions.append(
                    VersionInfo(
                        version=item.name.rsplit("/", 1)[-1],
                        state=_STATES.get(item.state, VersionState.DISABLED),
                        create_time=created,
                    )
                )
            return sorted(versions, key=lambda v: int(v.version))

        return self._call(f"list versions of {name}", fetch)

    def access(self, name: str, version: str = LATEST) -> Secret:
        response = self._call(
            f"access secret {name} version {version}",
            lambda: self._client.access_secret_version(
                name=f"{self._path(name)}/versions/{version}", timeout=self._timeout
            ),
            precondition=VersionUnavailableError,
        )
        data = bytes(response.payload.data)
        if "data_crc32c" in response.payload and response.payload.data_crc32c != _crc32c(data):
            raise BackendError(f"secret {name} version {version}: checksum mismatch")
        return Secret(data.decode("utf-8"))

    def add_version(self, name: str, value: Secret) -> str:
        data = value.reveal().encode("utf-8")
        if len(data) > PAYLOAD_MAX_BYTES:
            raise BackendError(
                f"a secret value is limited to {PAYLOAD_MAX_BYTES} bytes", retryable=False
            )
        payload = secretmanager_v1.SecretPayload(data=data, data_crc32c=_crc32c(data))
        version = self._call(
            f"add a version to secret {name}",
            lambda: self._client.add_secret_version(
                parent=self._path(name), payload=payload, timeout=self._timeout
            ),
        )
        return str(version.name.rsplit("/", 1)[-1])

    def update(
        self,
        name: str,
        *,
        aliases: Mapping[str, str],
        annotations: Mapping[str, str],
        etag: str,
    ) -> SecretMetadata:
        check_aliases(aliases)
        check_annotations(annotations)
        secret = secretmanager_v1.Secret(
            name=self._path(name),
            version_aliases={alias: int(number) for alias, number in aliases.items()},
            annotations=dict(annotations),
            etag=etag,
        )
        mask = field_mask_pb2.FieldMask(paths=["version_aliases", "annotations"])
        updated = self._call(
            f"update secret {name}",
            lambda: self._client.update_secret(
                secret=secret, update_mask=mask, timeout=self._timeout
            ),
            precondition=ConflictError,
        )
        return self._metadata(updated)

    def disable_version(self, name: str, version: str) -> None:
        # FAILED_PRECONDITION here means the version is already destroyed: nothing left to do.
        with contextlib.suppress(VersionUnavailableError):
            self._call(
                f"disable secret {name} version {version}",
                lambda: self._client.disable_secret_version(
                    name=f"{self._path(name)}/versions/{version}", timeout=self._timeout
                ),
                precondition=VersionUnavailableError,
            )

    def destroy_version(self, name: str, version: str) -> None:
        with contextlib.suppress(VersionUnavailableError):
            self._call(
                f"destroy secret {name} version {version}",
                lambda: self._client.destroy_secret_version(
                    name=f"{self._path(name)}/versions/{version}", timeout=self._timeout
                ),
                precondition=VersionUnavailableError,
            )

    def delete_secret(self, name: str, *, etag: str) -> None:
        self._call(
            f"delete secret {name}",
            lambda: self._client.delete_secret(
                request={"name": self._path(name), "etag": etag}, timeout=self._timeout
            ),
            precondition=ConflictError,
        )

    def list_secrets(self, labels: Mapping[str, str] | None = None) -> Iterator[SecretMetadata]:
        check_labels(labels or {})
        filter_ = " AND ".join(f"labels.{k}={v}" for k, v in sorted((labels or {}).items()))

        def fetch() -> list[SecretMetadata]:
            pager = self._client.list_secrets(
                request={
                    "parent": f"projects/{self._project}",
                    "filter": filter_,
                    "page_size": 100,
                },
                timeout=self._timeout,
            )
            found = [self._metadata(item) for item in pager]
            # Checked again here: the filter is an optimisation, the labels are the contract.
            return [
                m for m in found if all(m.labels.get(k) == v for k, v in (labels or {}).items())
            ]

        yield from self._call("list secrets", fetch)


def _period(secret: secretmanager_v1.Secret) -> timedelta | None:
    """The secret's rotation period, or None when it has no schedule (proto-plus reads an unset
    Duration as zero)."""
    period = secret.rotation.rotation_period if "rotation" in secret else None
    return period if isinstance(period, timedelta) and period > timedelta(0) else None
