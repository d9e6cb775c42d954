"""Where the audit digest chain's newest digest is kept between batches and runs
(`integrity.py`): a small object beside the checkpoint, compare-and-swapped on its generation.

`LocalChainHead` is a file (GUARD_STATE_DIR/audit/chain-head.json); `GcsChainHead` an object in
the checkpoint bucket under the exporter's own prefix (its IAM condition covers it). Both hold
`{"head": "<hex digest>"}`; a missing one is the chain's start (`integrity.GENESIS`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from instantly_guard.audit.checkpoint.local import locked
from instantly_guard.audit.integrity import GENESIS
from instantly_guard.errors import BackendError, ConflictError


class ChainHead(Protocol):
    def read(self) -> tuple[str, int]:
        """The newest digest and the generation to pass to `write` (0: none yet)."""
        ...

    def write(self, head: str, if_generation: int) -> int:
        """Store `head` if nothing changed since `if_generation`; ConflictError otherwise."""
        ...


def _parse(raw: bytes, where: str) -> str:
    try:
        head = json.loads(raw)["head"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"{where}: not a chain head", retryable=False) from exc
    return str(head)


def _body(head: str) -> bytes:
    return json.dumps({"head": head}).encode()


class LocalChainHead:
    """A `ChainHead` in a file; the generation is a counter kept beside the head. Reads and the
    compare-and-swap hold a `flock` on a lock file beside it, as the local checkpoint does: two
    runs (or two writers' threads) never interleave a read-compare-replace."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def _locked(self, kind: int) -> contextlib.AbstractContextManager[None]:
        return locked(self._lock_path, kind)

    def _load(self) -> tuple[str, int]:
        try:
            data = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return GENESIS, 0
        except ValueError as exc:
            raise BackendError(f"{self._path}: not a chain head", retryable=False) from exc
        return str(data["head"]), int(data.get("generation", 1))

    def read(self) -> tuple[str, int]:
        with self._locked(fcntl.LOCK_SH):
            return self._load()

    def write(self, head: str, if_generation: int) -> int:
        with self._locked(fcntl.LOCK_EX):
            _, generation = self._load()
            if generation != if_generation:
                raise ConflictError(f"{self._path} changed since generation {if_generation}")
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".chain-head-")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(json.dumps({"head": head, "generation": generation + 1}))
                os.replace(tmp, self._path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return generation + 1


class GcsChainHead:
    """A `ChainHead` in `gs://bucket/object_name` (`client` is a `storage.Client`)."""

    def __init__(
        self, client: Any, bucket: str, object_name: str, *, timeout: float = 30.0
    ) -> None:
        self._bucket = client.bucket(bucket)
        self._name = object_name
        self._timeout = timeout
        self._where = f"gs://{bucket}/{object_name}"

    def read(self) -> tuple[str, int]:
        from google.api_core import exceptions as gexc

        blob = self._bucket.blob(self._name)
        try:
            raw: bytes = blob.download_as_bytes(timeout=self._timeout)
        except gexc.NotFound:
            return GENESIS, 0
        except gexc.GoogleAPICallError as exc:
            raise BackendError(f"reading {self._where}: {exc.message}", retryable=True) from exc
        return _parse(raw, self._where), int(blob.generation or 0)

    def write(self, head: str, if_generation: int) -> int:
        from google.api_core import exceptions as gexc

        blob = self._bucket.blob(self._name)
        try:
            blob.upload_from_string(
                _body(head),
                content_type="application/json",
                if_generation_match=if_generation,
                timeout=self._timeout,
            )
        except gexc.PreconditionFailed as exc:
            raise ConflictError(f"{self._where} changed since generation {if_generation}") from exc
        except gexc.GoogleAPICallError as exc:
            raise BackendError(f"writing {self._where}: {exc.message}", retryable=True) from exc
        return int(blob.generation or 0)
