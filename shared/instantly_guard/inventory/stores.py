"""Where the snapshot lives, written only with a compare-and-swap on its generation.

The same discipline as the audit export's checkpoint (`audit/checkpoint/`): `read` returns the
stored bytes and a generation (0: none yet), `write` stores new bytes only if the generation is
still the one read, else raises `ConflictError`, so of two overlapping runs exactly one stores
its snapshot. Deployed, a Cloud Storage object written with `ifGenerationMatch`; locally, a file
(`GUARD_STATE_DIR/inventory/snapshot.bin`) replaced atomically under an exclusive `flock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from instantly_guard.audit.checkpoint.local import locked
from instantly_guard.errors import BackendError, ConflictError


class SnapshotStore(Protocol):
    def read(self) -> tuple[bytes | None, int]:
        """The stored snapshot (None: none yet) and its generation."""
        ...

    def write(self, body: bytes, if_generation: int) -> int:
        """Store `body` if the generation is still `if_generation`; the new generation.
        ConflictError when another run wrote in between, BackendError when the store fails."""
        ...

    def describe(self) -> str: ...


class LocalSnapshotStore:
    """A file holding `<generation>\\n<snapshot bytes>`."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")

    def _locked(self, kind: int) -> contextlib.AbstractContextManager[None]:
        return locked(self._lock_path, kind)

    def _load(self) -> tuple[bytes | None, int]:
        try:
            with self._path.open("rb") as handle:
                first = handle.readline(32)
                body = handle.read()  # read past the generation line: one copy of the body
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise BackendError(f"cannot read {self._path}: {exc.strerror}") from exc
        if not first.endswith(b"\n") or not first[:-1].isdigit():
            raise BackendError(f"{self._path} is not an inventory snapshot", retryable=False)
        return body, int(first)

    def read(self) -> tuple[bytes | None, int]:
        with self._locked(fcntl.LOCK_SH):
            return self._load()

    def _generation(self) -> int:
        """The stored generation, from the first line only (the body is not read)."""
        try:
            with self._path.open("rb") as handle:
                first = handle.readline(32)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise BackendError(f"cannot read {self._path}: {exc.strerror}") from exc
        if not first.endswith(b"\n") or not first[:-1].isdigit():
            raise BackendError(f"{self._path} is not an inventory snapshot", retryable=False)
        return int(first)

    def write(self, body: bytes, if_generation: int) -> int:
        with self._locked(fcntl.LOCK_EX):
            current = self._generation()
            if current != if_generation:
                raise ConflictError(f"{self._path}: generation is {current}, not {if_generation}")
            generation = current + 1
            try:
                fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".snapshot-")
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(b"%d\n" % generation)
                        handle.write(body)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(tmp, self._path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            except OSError as exc:
                raise BackendError(f"cannot write {self._path}: {exc.strerror}") from exc
            return generation

    def describe(self) -> str:
        return str(self._path)


class GcsSnapshotStore:
    """The snapshot in `gs://bucket/object`, written with `if_generation_match`. A retried
    upload whose first attempt succeeded gets 412 too: then the object is read back, and if it
    holds exactly our bytes the write was ours."""

    def __init__(
        self, client: Any, bucket: str, object_name: str, *, timeout: float = 60.0
    ) -> None:
        self._client = client
        self._bucket = client.bucket(bucket)
        self._name = object_name
        self._timeout = timeout
        self._where = f"gs://{bucket}/{object_name}"

    def _error(self, action: str, exc: Exception) -> BackendError:
        from google.api_core import exceptions as gexc

        from instantly_guard.google_errors import is_transient

        if isinstance(exc, gexc.GoogleAPICallError):
            return BackendError(
                f"{action} {self._where} failed: {exc.code} {exc.message}",
                retryable=is_transient(exc),
            )
        return BackendError(f"{action} {self._where} failed: {type(exc).__name__}")

    def read(self) -> tuple[bytes | None, int]:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from requests import exceptions as http_exc

        blob = self._bucket.blob(self._name)
        try:
            raw: bytes = blob.download_as_bytes(timeout=self._timeout)
        except gexc.NotFound:
            return None, 0
        except (
            gexc.GoogleAPICallError,
            http_exc.RequestException,
            auth_exc.TransportError,
        ) as exc:
            raise self._error("reading", exc) from exc
        if blob.generation is None:
            raise BackendError(f"reading {self._where}: no generation in the answer")
        return raw, int(blob.generation)

    def write(self, body: bytes, if_generation: int) -> int:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from requests import exceptions as http_exc

        blob = self._bucket.blob(self._name)
        try:
            blob.upload_from_string(
                body,
                content_type="application/gzip",
                if_generation_match=if_generation,
                timeout=self._timeout,
            )
        except gexc.PreconditionFailed as exc:
            stored, generation = self.read()
            if stored == body:
                return generation
            raise ConflictError(
                f"{self._where} changed since generation {if_generation} (another run wrote it)"
            ) from exc
        except (
            gexc.GoogleAPICallError,
            http_exc.RequestException,
            auth_exc.TransportError,
        ) as exc:
            raise self._error("writing", exc) from exc
        if blob.generation is None:
            raise BackendError(f"writing {self._where}: no generation in the answer")
        return int(blob.generation)

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        self._client.close()
