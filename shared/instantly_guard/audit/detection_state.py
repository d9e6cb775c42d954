"""The detection state (`detections.state`) in a Cloud Storage object, beside the checkpoint.

One export run at a time holds the checkpoint's lease, so plain overwrites suffice; a backfill
running at the same time as a scheduled run may lose the other's last update, which costs at
most a repeated finding (collapsed in Cloud Logging by its stable insertId).
"""

from __future__ import annotations

import json
from typing import Any

from google.api_core import exceptions as gexc

from instantly_guard.detections.state import DetectionState
from instantly_guard.errors import BackendError
from instantly_guard.google_errors import is_transient


class GcsStateStore:
    """A `StateStore` in `gs://bucket/object_name`. `client` is a `storage.Client`."""

    def __init__(
        self, client: Any, bucket: str, object_name: str, *, timeout: float = 30.0
    ) -> None:
        self._blob = client.bucket(bucket).blob(object_name)
        self._where = f"gs://{bucket}/{object_name}"
        self._timeout = timeout

    def load(self) -> DetectionState:
        try:
            raw: bytes = self._blob.download_as_bytes(timeout=self._timeout)
        except gexc.NotFound:
            return DetectionState()
        except gexc.GoogleAPICallError as exc:
            raise BackendError(
                f"reading {self._where} failed: {exc.code} {exc.message}",
                retryable=is_transient(exc),
            ) from exc
        try:
            return DetectionState.from_json(json.loads(raw))
        except ValueError:
            return DetectionState()

    def save(self, state: DetectionState) -> None:
        data = json.dumps(state.to_json(), separators=(",", ":"))
        try:
            self._blob.upload_from_string(
                data, content_type="application/json", timeout=self._timeout
            )
        except gexc.GoogleAPICallError as exc:
            raise BackendError(
                f"writing {self._where} failed: {exc.code} {exc.message}",
                retryable=is_transient(exc),
            ) from exc
