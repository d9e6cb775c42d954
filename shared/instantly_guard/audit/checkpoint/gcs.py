"""The checkpoint in a Cloud Storage object, written with `ifGenerationMatch` (compare-and-swap).

Every object version has a generation number. `read` downloads the object and takes the
generation from the same response; `write` uploads with `if_generation_match` set to it (0 when
the object did not exist), so Cloud Storage refuses the write with 412 if anyone wrote in
between: that is the `ConflictError` that stops the run which lost. Cloud Storage allows about one
write per second to one object; the exporter spaces its checkpoint writes accordingly.

A retried upload whose first attempt succeeded but lost its answer also gets 412. Before reporting
a conflict the store reads the object back: if it holds exactly what we wrote, the write is ours.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from requests import exceptions as http_exc

from instantly_guard.audit.checkpoint.base import Checkpoint
from instantly_guard.errors import BackendError, ConflictError
from instantly_guard.google_errors import is_transient

_NETWORK = (http_exc.RequestException, auth_exc.TransportError)


def _backend_error(action: str, where: str, exc: Exception) -> BackendError:
    if isinstance(exc, gexc.GoogleAPICallError):
        retryable = is_transient(exc)
        return BackendError(
            f"{action} {where} failed: {exc.code} {exc.message}", retryable=retryable
        )
    return BackendError(f"{action} {where} failed: {type(exc).__name__}", retryable=True)


class GcsCheckpointStore:
    """A `CheckpointStore` in `gs://bucket/object_name`. `client` is a `storage.Client`."""

    def __init__(
        self, client: Any, bucket: str, object_name: str, *, timeout: float = 30.0
    ) -> None:
        self._client = client
        self._bucket = client.bucket(bucket)
        self._name = object_name
        self._timeout = timeout
        self._where = f"gs://{bucket}/{object_name}"

    def _download(self) -> tuple[bytes | None, int]:
        blob = self._bucket.blob(self._name)
        try:
            raw: bytes = blob.download_as_bytes(timeout=self._timeout)
        except gexc.NotFound:
            return None, 0
        except (gexc.GoogleAPICallError, *_NETWORK) as exc:
            raise _backend_error("reading", self._where, exc) from exc
        if blob.generation is None:
            raise BackendError(f"reading {self._where}: no generation in the answer")
        return raw, int(blob.generation)

    def read(self) -> tuple[Checkpoint | None, int]:
        raw, generation = self._download()
        if raw is None:
            return None, 0
        return Checkpoint.from_bytes(raw), generation

    def write(self, state: Checkpoint, if_generation: int) -> int:
        body = state.to_bytes()
        blob = self._bucket.blob(self._name)
        try:
            blob.upload_from_string(
                body,
                content_type="application/json",
                if_generation_match=if_generation,
                timeout=self._timeout,
            )
        except gexc.PreconditionFailed as exc:
            stored, generation = self._download()
            if stored == body:
                return generation
            raise ConflictError(
                f"{self._where} changed since generation {if_generation} (another run wrote it)"
            ) from exc
        except (gexc.GoogleAPICallError, *_NETWORK) as exc:
            raise _backend_error("writing", self._where, exc) from exc
        if blob.generation is None:
            raise BackendError(f"writing {self._where}: no generation in the answer")
        return int(blob.generation)

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        self._client.close()
