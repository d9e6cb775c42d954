"""An in-process stand-in for the slice of Cloud Storage's JSON API the checkpoint store uses.

`gcp-storage-emulator` ignores `ifGenerationMatch`, so it cannot prove a compare-and-swap; this
one enforces it. Served over HTTP on a random loopback port; point the real google-cloud-storage
client at it with `STORAGE_EMULATOR_HOST=standin.url` (or `client_options={"api_endpoint": ...}`).

Implemented: media download (`GET /download/storage/v1/b/B/o/NAME?alt=media`), object metadata
(`GET /storage/v1/b/B/o/NAME`), and simple uploads (`POST /upload/storage/v1/b/B/o?uploadType=
multipart|media`). `ifGenerationMatch` is honoured on all three (0 = must not exist): a mismatch
answers 412 and changes nothing. Each write gets a new, larger generation.

    with GcsStandIn() as gcs:
        gcs.fail_next(503)                      # next request answers 503
        gcs.lose_next_response()                # next upload is stored, then the answer is lost
        gcs.objects["bucket/name"]              # (data, generation)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import google_crc32c

_DOWNLOAD = re.compile(r"^/download/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>[^/?]+)$")
_METADATA = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>[^/?]+)$")
_BUCKET = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)$")
_UPLOAD = re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$")


class GcsStandIn:
    """Objects in memory, keyed `bucket/name` -> (data, generation)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self.lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, int]] = {}
        self._generation = 1_700_000_000_000_000
        self.faults: deque[int] = deque()
        self.lose_responses = 0
        self.requests: list[tuple[str, str]] = []
        self.precondition_failures = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self._host}:{self._server.server_address[1]}"

    def fail_next(self, status: int, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([status] * times)

    def lose_next_response(self) -> None:
        """The next upload is carried out, then the connection drops without an answer."""
        with self.lock:
            self.lose_responses += 1

    def put(self, bucket: str, name: str, data: bytes) -> int:
        """Write an object directly (as another writer would); returns its generation."""
        with self.lock:
            return self._store(f"{bucket}/{name}", data)

    def _store(self, key: str, data: bytes) -> int:
        self._generation += 1
        self.objects[key] = (data, self._generation)
        return self._generation

    def resource(self, bucket: str, name: str) -> dict[str, Any]:
        data, generation = self.objects[f"{bucket}/{name}"]
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{generation}",
            "name": name,
            "bucket": bucket,
            "generation": str(generation),
            "metageneration": "1",
            "contentType": "application/json",
            "size": str(len(data)),
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),  # noqa: S324
            "crc32c": _crc32c(data),
        }

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GcsStandIn:
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer((self._host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GcsStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


class _Handler(BaseHTTPRequestHandler):
    owner: GcsStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(
            status,
            {"error": {"code": status, "message": message, "errors": [{"message": message}]}},
        )

    def _precondition(self, key: str, query: dict[str, list[str]]) -> bool:
        wanted = query.get("ifGenerationMatch")
        if wanted is None:
            return True
        current = self.owner.objects.get(key, (b"", 0))[1]
        if int(wanted[0]) == current:
            return True
        self.owner.precondition_failures += 1
        self._error(412, "At least one of the pre-conditions you specified did not hold.")
        return False

    def _fault(self) -> bool:
        with self.owner.lock:
            status = self.owner.faults.popleft() if self.owner.faults else None
        if status is None:
            return False
        self._error(status, "injected failure")
        return True

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        bucket_match = _BUCKET.match(parts.path)
        if bucket_match is not None:
            # The client looks buckets up in the background (its metadata cache for tracing):
            # answered, but neither recorded nor subject to injected faults.
            name = bucket_match["bucket"]
            self._json(200, {"kind": "storage#bucket", "id": name, "name": name, "location": "US"})
            return
        self.owner.requests.append(("GET", parts.path))
        if self._fault():
            return
        match = _DOWNLOAD.match(parts.path) or _METADATA.match(parts.path)
        if match is None:
            self._error(404, "Not Found")
            return
        bucket, name = match["bucket"], unquote(match["name"])
        key = f"{bucket}/{name}"
        with self.owner.lock:
            if key not in self.owner.objects:
                self._error(404, f"No such object: {key}")
                return
            if not self._precondition(key, query):
                return
            data, generation = self.owner.objects[key]
            resource = self.owner.resource(bucket, name)
        if parts.path.startswith("/download/") or query.get("alt") == ["media"]:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Goog-Generation", str(generation))
            self.send_header("X-Goog-Metageneration", "1")
            self.send_header(
                "X-Goog-Hash", f"crc32c={resource['crc32c']},md5={resource['md5Hash']}"
            )
            self.end_headers()
            self.wfile.write(data)
            return
        self._json(200, resource)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.owner.requests.append(("POST", parts.path))
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self._fault():
            return
        match = _UPLOAD.match(parts.path)
        if match is None:
            self._error(404, "Not Found")
            return
        bucket = match["bucket"]
        upload_type = query.get("uploadType", [""])[0]
        if upload_type == "multipart":
            name, data = _multipart(self.headers.get("Content-Type", ""), body)
        elif upload_type == "media":
            name, data = query.get("name", [""])[0], body
        else:
            self._error(400, f"uploadType {upload_type!r} is not supported by the stand-in")
            return
        if not name:
            self._error(400, "object name missing")
            return
        key = f"{bucket}/{name}"
        with self.owner.lock:
            if not self._precondition(key, query):
                return
            self.owner._store(key, data)
            resource = self.owner.resource(bucket, name)
            lose = self.owner.lose_responses > 0
            if lose:
                self.owner.lose_responses -= 1
        if lose:
            self.close_connection = True
            self.connection.close()
            return
        self._json(200, resource)


def _multipart(content_type: str, body: bytes) -> tuple[str, bytes]:
    """(object name, data) from a `multipart/related` upload: JSON metadata, then the media."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    metadata = json.loads(parts[0].get_payload(decode=True))
    data = parts[1].get_payload(decode=True) or b""
    return str(metadata.get("name", "")), data
