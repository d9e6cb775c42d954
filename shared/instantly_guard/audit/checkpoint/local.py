"""The checkpoint in a file, with the same compare-and-swap semantics as the Cloud Storage one.

The file holds `{"generation": N, "state": {...}}`. A write takes an exclusive `flock` on a lock
file beside it, re-reads the stored generation, refuses (ConflictError) if it is not the one the
caller read, then writes a temporary file, fsyncs it and renames it over the old one (and fsyncs
the directory): concurrent threads and processes see the old or the new checkpoint, never a torn
one, and exactly one of two racing writers wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from instantly_guard.audit.checkpoint.base import Checkpoint
from instantly_guard.errors import BackendError, ConflictError


@contextlib.contextmanager
def locked(lock_path: Path, kind: int) -> Iterator[None]:
    """Hold `flock(kind)` on `lock_path` (created, with its folder, when missing): the local
    stores' read-compare-replace never interleaves across threads or processes."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BackendError(f"cannot open {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, kind)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class LocalCheckpointStore:
    """A `CheckpointStore` in `path` (e.g. `GUARD_STATE_DIR/audit/checkpoint.json`)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")

    def _locked(self, kind: int) -> contextlib.AbstractContextManager[None]:
        return locked(self._lock_path, kind)

    def _load(self) -> tuple[Checkpoint | None, int]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise BackendError(f"cannot read {self._path}: {exc.strerror}") from exc
        try:
            document = json.loads(raw)
            generation = int(document["generation"])
            state = document["state"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{self._path} is not a checkpoint: {exc}", retryable=False) from exc
        return Checkpoint.from_json(state), generation

    def read(self) -> tuple[Checkpoint | None, int]:
        with self._locked(fcntl.LOCK_SH):
            return self._load()

    def remove(self) -> None:
        """Delete the checkpoint (a finished backfill's): the next read finds none."""
        with self._locked(fcntl.LOCK_EX), contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        with contextlib.suppress(OSError):
            self._lock_path.unlink()

    def write(self, state: Checkpoint, if_generation: int) -> int:
        with self._locked(fcntl.LOCK_EX):
            _, current = self._load()
            if current != if_generation:
                raise ConflictError(f"{self._path}: generation is {current}, not {if_generation}")
            generation = current + 1
            body = json.dumps(
                {"generation": generation, "state": state.to_json()}, separators=(",", ":")
            ).encode()
            try:
                fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".checkpoint-")
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(body)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(tmp, self._path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
                dir_fd = os.open(self._path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError as exc:
                raise BackendError(f"cannot write {self._path}: {exc.strerror}") from exc
            return generation

    def describe(self) -> str:
        return str(self._path)
