"""A JSON-lines file standing in for Cloud Logging (`GUARD_STATE_DIR/audit/<log>.jsonl`).

Each line is one entry in Cloud Logging's `LogEntry` JSON shape (`logName`, `insertId`,
`timestamp`, `severity`, `labels`, `jsonPayload`). A batch is appended with one `write` under an
exclusive `flock` and fsync'd before `write` returns, so concurrent writers never interleave
lines. Like Cloud Logging, the file may hold an entry twice after a crash; readers collapse
equal `insertId`s (`read_entries(..., unique=True)`).

Never a torn line: an append that fails part-way (disk full, quota) is cut back to where the
batch started (`ftruncate`), and an append after a file that does not end in a newline (a crash
in the middle of a `write`, or a truncate that failed too) starts on a fresh line. `read_entries`
skips (and logs) a line that is not complete JSON: a tail torn by a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from instantly_guard.audit.entries import ExportEntry
from instantly_guard.errors import BackendError

_log = logging.getLogger("instantly_guard.audit")
_str = json.encoder.encode_basestring  # a str as a JSON string literal (C implementation)


def entry_line(entry: ExportEntry, log_name: str) -> str:
    """One JSONL line (without the newline)."""
    return _LineEncoder(log_name).line(entry)


class _LineEncoder:
    """Builds JSONL lines for one log name. Assembled from JSON-encoded strings rather than
    through `json.dumps` of a dict: the payload's JSON text is used as is, the constant head is
    encoded once and the labels' JSON once per labels object (entries with equal labels share
    one, see `ExportEntry`). This is the hot loop of a large export."""

    _MAX_CACHED = 4096

    def __init__(self, log_name: str) -> None:
        self._head = f'{{"logName":{_str(log_name)},"insertId":'
        # id(labels) -> (labels, its JSON): holding the object keeps its id from being reused.
        self._labels: dict[int, tuple[Mapping[str, str], str]] = {}

    def _labels_json(self, labels: Mapping[str, str]) -> str:
        cached = self._labels.get(id(labels))
        if cached is not None and cached[0] is labels:
            return cached[1]
        text = ",".join(f"{_str(k)}:{_str(v)}" for k, v in labels.items())
        if len(self._labels) < self._MAX_CACHED:
            self._labels[id(labels)] = (labels, text)
        return text

    def line(self, entry: ExportEntry) -> str:
        labels = self._labels_json(entry.labels)
        timestamp = entry.timestamp.isoformat().replace("+00:00", "Z")
        return (
            f'{self._head}{_str(entry.insert_id)},"timestamp":"{timestamp}",'
            f'"severity":{_str(entry.severity)},"labels":{{{labels}}},'
            f'"jsonPayload":{entry.payload_json}}}'
        )


class JsonlSink:
    """A `LogSink` appending to `path`."""

    def __init__(self, path: Path, *, log_name: str = "instantly-audit") -> None:
        self._path = Path(path)
        self._log_name = log_name
        self._lines = _LineEncoder(log_name)

    def write(self, entries: Sequence[ExportEntry]) -> None:
        if not entries:
            return
        line = self._lines.line
        data = "".join([f"{line(e)}\n" for e in entries]).encode()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BackendError(f"cannot append to {self._path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":
                data = b"\n" + data  # a torn last line: ours starts on a fresh one
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):  # roll the partial batch back
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                raise BackendError(f"cannot append to {self._path}: {exc.strerror}") from exc
        except OSError as exc:
            raise BackendError(f"cannot append to {self._path}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def describe(self) -> str:
        return str(self._path)


def read_entries(path: Path, *, unique: bool = False) -> Iterator[dict[str, Any]]:
    """The entries in a JSONL sink file, in file order; `unique` keeps the first of each insertId."""
    seen: set[str] = set()
    if not Path(path).exists():
        return
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                # A line torn by a crash mid-append (at the end, or followed by the fresh line
                # the next append started): its entry was not acknowledged, so it is written
                # again by the next run.
                _log.warning("%s: skipping a torn line (%d characters)", path, len(line))
                continue
            if unique:
                if entry["insertId"] in seen:
                    continue
                seen.add(entry["insertId"])
            yield entry
