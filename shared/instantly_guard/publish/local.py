"""The local backend: an on-disk outbox with the same guarantee as a Pub/Sub acknowledgement.

Layout: `<GUARD_STATE_DIR>/outbox/<key>.json`, one file per message, where `key` is the message's
`event_id` attribute (or the SHA-256 of its data when it has none). A message is written to a
private temporary file, fsync'd, hard-linked to its final name, and the directory is fsync'd;
only then does `publish` return. So:

- a message `publish` acknowledged survives a crash or power loss (file and name are on disk);
- readers never see a half-written file (the final name appears only once the content is whole);
- concurrent threads and processes (gunicorn workers) need no lock: every writer has its own
  temporary file, and `link` refuses to replace an existing name, so the same event published
  twice, even by two processes at once, is stored exactly once (the first copy wins).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from instantly_guard.publish.base import PublishError

OUTBOX_DIR: Final = "outbox"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TMP_PREFIX: Final = ".tmp-"


def outbox_dir(state_dir: Path) -> Path:
    return state_dir / OUTBOX_DIR


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class OutboxPublisher:
    """Writes each message to its own fsync'd file under `<state_dir>/outbox/`."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = outbox_dir(state_dir)
        self._ready = False
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self._dir

    def _ensure_dir(self, *, again: bool = False) -> None:
        """Create the outbox directory once; `again` re-creates it after it was removed."""
        if self._ready and not again:
            return
        with self._lock:
            if again or not self._ready:
                self._dir.mkdir(parents=True, exist_ok=True)
                _fsync_dir(self._dir.parent)
                self._ready = True

    def publish(self, data: bytes, attributes: Mapping[str, str], timeout: float) -> str:
        """Store the message; `timeout` is not enforced (local file writes are not interruptible)."""
        key = attributes.get("event_id", "")
        if not _SAFE_KEY.match(key):
            key = hashlib.sha256(data).hexdigest()
        final = self._dir / f"{key}.json"
        record = _record(key, data, attributes)
        try:
            self._ensure_dir()
            try:
                self._store(final, record)
            except FileNotFoundError:
                # The directory was removed after we created it (someone cleared the state
                # dir): create it again, once, rather than fail every publish until a restart.
                self._ensure_dir(again=True)
                self._store(final, record)
        except OSError as exc:
            raise PublishError(f"outbox write failed: {exc.strerror or exc}") from exc
        return key

    def _store(self, final: Path, record: bytes) -> None:
        if not final.exists():
            self._write_new(final, record)
        # Also when the file already existed: another writer may not have synced the
        # directory yet, and we must not acknowledge a name that is not on disk.
        _fsync_dir(self._dir)

    def _write_new(self, final: Path, record: bytes) -> None:
        tmp = self._dir / f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                _write_all(fd, record)
                os.fsync(fd)
            finally:
                os.close(fd)
            # FileExistsError: the same event, stored by a concurrent writer; the first copy wins.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        return None


def _record(key: str, data: bytes, attributes: Mapping[str, str]) -> bytes:
    entry: dict[str, Any] = {
        "id": key,
        "published_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "attributes": dict(attributes),
    }
    try:
        entry["data"] = data.decode("utf-8")
    except UnicodeDecodeError:
        entry["data_base64"] = base64.b64encode(data).decode("ascii")
    return (json.dumps(entry, sort_keys=True) + "\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One stored message, as read back from the outbox."""

    id: str
    published_at: str
    attributes: dict[str, str]
    data: bytes

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready view: the data decoded as JSON when it is JSON, else as text or base64."""
        view: dict[str, Any] = {
            "id": self.id,
            "published_at": self.published_at,
            "attributes": self.attributes,
        }
        try:
            view["data"] = json.loads(self.data)
        except ValueError:
            try:
                view["data_text"] = self.data.decode("utf-8")
            except UnicodeDecodeError:
                view["data_base64"] = base64.b64encode(self.data).decode("ascii")
        return view


def read_outbox(state_dir: Path, *, problems: list[str] | None = None) -> Iterator[OutboxMessage]:
    """Every stored message, oldest first (by publish time, then id). Temporary files are skipped.

    A file that cannot be read or parsed is skipped and described in `problems` (when given):
    one bad file must not hide the messages after it."""
    directory = outbox_dir(state_dir)
    if not directory.is_dir():
        return
    messages = []
    for path in directory.glob("*.json"):
        if path.name.startswith(_TMP_PREFIX):
            continue
        try:
            messages.append(_read_message(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if problems is not None:
                problems.append(f"{path}: {type(exc).__name__}: {exc}")
    messages.sort(key=lambda m: (m.published_at, m.id))
    yield from messages


def _read_message(path: Path) -> OutboxMessage:
    entry = json.loads(path.read_text(encoding="utf-8"))
    if "data" in entry:
        # surrogatepass: a record written by hand (or by an older version) may hold a lone
        # surrogate; its bytes round-trip instead of failing the whole listing.
        data = str(entry["data"]).encode("utf-8", "surrogatepass")
    else:
        data = base64.b64decode(entry.get("data_base64", ""))
    return OutboxMessage(
        id=str(entry["id"]),
        published_at=str(entry["published_at"]),
        attributes={str(k): str(v) for k, v in entry.get("attributes", {}).items()},
        data=data,
    )
