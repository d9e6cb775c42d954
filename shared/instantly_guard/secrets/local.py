"""On-disk secret store with Secret Manager's semantics, for `make run` and tests.

Layout under `root` (`GUARD_STATE_DIR/secrets`):

    <name>/secret.json      labels, annotations, aliases, etag, versions (metadata only)
    <name>/versions/<n>     one version's value, mode 0600
    <name>/.lock            flock'd for every read-modify-write

Every change to `secret.json` is written to a temporary file, fsync'd and renamed over the old one
under an exclusive `flock`, so concurrent threads and processes (functions-framework workers, the
CLI) see either the old or the new state, never a torn one, and etag checks are exact.
Directories are 0700 and value files 0600: the values are as sensitive as the keys themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets as _random
import shutil
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from instantly_guard.errors import BackendError, ConflictError
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

_META = "secret.json"
_MOUNTS = "mounts.json"  # local-only: files kept holding `latest` (see mount_latest)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_etag() -> str:
    # Quoted like Secret Manager's, so nothing downstream assumes a format.
    return f'"{_random.token_hex(8)}"'


class LocalSecretStore:
    """A `SecretStore` keeping its state in files under `root`."""

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = _now) -> None:
        self._root = Path(root)
        self._clock = clock

    # -- plumbing ----------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self._root / check_secret_name(name)

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        directory = self._dir(name)
        if not (directory / _META).exists():
            raise SecretNotFoundError(f"secret {name} not found")
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @staticmethod
    def _read(directory: Path) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((directory / _META).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SecretNotFoundError(f"secret {directory.name} not found") from exc
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read secret {directory.name}: {exc}") from exc
        return data

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{_random.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _save(self, directory: Path, data: Mapping[str, Any]) -> None:
        self._write_file(directory / _META, json.dumps(data, indent=1, sort_keys=True).encode())

    @staticmethod
    def _metadata(name: str, data: Mapping[str, Any]) -> SecretMetadata:
        created = data.get("create_time")
        return SecretMetadata(
            name=name,
            labels=dict(data.get("labels", {})),
            annotations=dict(data.get("annotations", {})),
            aliases={k: str(v) for k, v in data.get("aliases", {}).items()},
            etag=str(data.get("etag", "")),
            create_time=datetime.fromisoformat(created) if created else None,
            rotation_period=_period(data.get("rotation_period_seconds")),
        )

    @staticmethod
    def _resolve(name: str, data: Mapping[str, Any], version: str) -> dict[str, Any]:
        versions: list[dict[str, Any]] = data.get("versions", [])
        if version == LATEST:
            if not versions:
                raise SecretNotFoundError(f"secret {name} has no version")
            return versions[-1]
        if not version.isdigit():
            aliases: Mapping[str, str] = data.get("aliases", {})
            if version not in aliases:
                raise SecretNotFoundError(f"secret {name} has no alias {version!r}")
            version = str(aliases[version])
        for entry in versions:
            if entry["version"] == version:
                return entry
        raise SecretNotFoundError(f"secret {name} has no version {version}")

    # -- the port ----------------------------------------------------------------------------

    def create_secret(
        self, name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> SecretMetadata:
        check_labels(labels)
        check_annotations(annotations)
        directory = self._dir(name)
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise ConflictError(f"secret {name} already exists") from exc
        (directory / "versions").mkdir(mode=0o700)
        data = {
            "labels": dict(labels),
            "annotations": dict(annotations),
            "aliases": {},
            "etag": _new_etag(),
            "create_time": self._clock().isoformat(),
            "versions": [],
        }
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._save(directory, data)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return self._metadata(name, data)

    def get(self, name: str) -> SecretMetadata:
        return self._metadata(name, self._read(self._dir(name)))

    def list_versions(self, name: str) -> list[VersionInfo]:
        data = self._read(self._dir(name))
        return [
            VersionInfo(
                version=entry["version"],
                state=VersionState(entry["state"]),
                create_time=datetime.fromisoformat(entry["create_time"]),
            )
            for entry in data.get("versions", [])
        ]

    def access(self, name: str, version: str = LATEST) -> Secret:
        directory = self._dir(name)
        entry = self._resolve(name, self._read(directory), version)
        if entry["state"] != VersionState.ENABLED:
            raise VersionUnavailableError(
                f"secret {name} version {entry['version']} is {entry['state'].lower()}"
            )
        try:
            raw = (directory / "versions" / entry["version"]).read_bytes()
        except OSError as exc:
            raise BackendError(f"cannot read secret {name} version {entry['version']}") from exc
        return Secret(raw.decode("utf-8"))

    def add_version(self, name: str, value: Secret) -> str:
        payload = value.reveal().encode("utf-8")
        if len(payload) > PAYLOAD_MAX_BYTES:
            raise BackendError(
                f"a secret value is limited to {PAYLOAD_MAX_BYTES} bytes", retryable=False
            )
        with self._locked(name) as directory:
            data = self._read(directory)
            versions: list[dict[str, Any]] = data.setdefault("versions", [])
            number = str(int(versions[-1]["version"]) + 1 if versions else 1)
            self._write_file(directory / "versions" / number, payload)
            versions.append(
                {
                    "version": number,
                    "state": VersionState.ENABLED.value,
                    "create_time": self._clock().isoformat(),
                }
            )
            self._save(directory, data)
            self._refresh_mounts(directory, data)
        return number

    # -- mounts (local only) -----------------------------------------------------------------

    def mount_latest(self, name: str, path: Path) -> None:
        """Keep `path` (0600) holding the `latest` version of `name`, like a Secret Manager volume
        mounted on `latest`, but written in the same locked step as the version itself, by
        whichever process adds it: a reader of `path` never lags a version behind the store (a
        poll would, and the first delivery after a webhook-secret rotation would get a 401)."""
        with self._locked(name) as directory:
            mounts = self._mounts(directory)
            if str(path) not in mounts:
                self._write_file(
                    directory / _MOUNTS, json.dumps([*mounts, str(path)]).encode("utf-8")
                )
            self._refresh_mounts(directory, self._read(directory))

    @staticmethod
    def _mounts(directory: Path) -> list[str]:
        try:
            data = json.loads((directory / _MOUNTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [str(p) for p in data] if isinstance(data, list) else []

    def _refresh_mounts(self, directory: Path, data: Mapping[str, Any]) -> None:
        """Write the latest version to every mount (called under the secret's lock). A latest
        version that is not enabled leaves the file as it is: Secret Manager cannot serve it."""
        mounts = self._mounts(directory)
        versions = data.get("versions") or []
        if not mounts or not versions or versions[-1]["state"] != VersionState.ENABLED.value:
            return
        try:
            payload = (directory / "versions" / versions[-1]["version"]).read_bytes()
        except OSError:
            return
        for target in mounts:
            with contextlib.suppress(OSError):
                self._write_file(Path(target), payload)

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
        with self._locked(name) as directory:
            data = self._read(directory)
            if data.get("etag") != etag:
                raise ConflictError(f"secret {name} changed since it was read (etag mismatch)")
            known = {entry["version"]: entry for entry in data.get("versions", [])}
            for alias, version in aliases.items():
                entry = known.get(version)
                if entry is None or entry["state"] == VersionState.DESTROYED:
                    raise BackendError(
                        f"alias {alias!r} cannot point at version {version} of {name}",
                        retryable=False,
                    )
            data["aliases"] = dict(aliases)
            data["annotations"] = dict(annotations)
            data["etag"] = _new_etag()
            self._save(directory, data)
        return self._metadata(name, data)

    def _set_state(self, name: str, version: str, state: VersionState) -> None:
        with self._locked(name) as directory:
            data = self._read(directory)
            entry = self._resolve(name, data, version)
            if entry["state"] == VersionState.DESTROYED:
                return
            entry["state"] = state.value
            if state == VersionState.DESTROYED:
                with contextlib.suppress(FileNotFoundError):
                    (directory / "versions" / entry["version"]).unlink()
                data["aliases"] = {
                    alias: number
                    for alias, number in data.get("aliases", {}).items()
                    if number != entry["version"]
                }
            self._save(directory, data)
            self._refresh_mounts(directory, data)

    def disable_version(self, name: str, version: str) -> None:
        self._set_state(name, version, VersionState.DISABLED)

    def destroy_version(self, name: str, version: str) -> None:
        self._set_state(name, version, VersionState.DESTROYED)

    def delete_secret(self, name: str, *, etag: str) -> None:
        with self._locked(name) as directory:
            if self._read(directory).get("etag") != etag:
                raise ConflictError(f"secret {name} changed since it was read")
            # Renamed first, under the lock: readers then see "not found", never half a secret.
            # (A leading dot is not a valid secret name, so the listing skips the remains.)
            doomed = directory.with_name(f".deleted-{name}-{_random.token_hex(4)}")
            directory.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def list_secrets(self, labels: Mapping[str, str] | None = None) -> Iterator[SecretMetadata]:
        if not self._root.is_dir():
            return
        for directory in sorted(self._root.iterdir()):
            if not (directory / _META).is_file():
                continue
            try:
                meta = self._metadata(directory.name, self._read(directory))
            except SecretNotFoundError:
                continue
            if labels and any(meta.labels.get(k) != v for k, v in labels.items()):
                continue
            yield meta


def _period(seconds: Any) -> timedelta | None:
    """`rotation_period_seconds` in a secret's metadata file: the schedule Secret Manager would
    hold (the local store never fires it; a test or `make run` sends the event)."""
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return timedelta(seconds=seconds)
    return None
