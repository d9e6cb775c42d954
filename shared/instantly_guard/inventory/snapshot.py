"""The inventory's snapshot: every kind's records, sorted by id, in one gzip'd text object.

    {"version": 1, "taken_at": "...", "workspace_id": "..."}
    member\\t"<id>"\\t{"fields": {...}, "name": "..."}
    ...                                     (kinds in `records.KINDS` order, ids ascending)

The header and each kind are gzip members of their own, concatenated (one stream to a reader).
Compact on purpose: a record holds only what is compared (about 100 bytes for a block-list entry;
10k members and 100k entries compress to about 2.7 MB). Neither side is ever decoded whole: the
stored snapshot is decompressed line by line while it is compared, and the current records are
compressed into the new snapshot as they are listed (`SnapshotWriter`, `Section`), so a run holds
the two compressed snapshots and one page, unless a listing comes out of id order (then that kind
is held decoded once and sorted).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from instantly_guard.errors import BackendError
from instantly_guard.inventory.records import split_line

FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Header:
    taken_at: datetime
    workspace_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "taken_at": self.taken_at.isoformat(),
            "workspace_id": self.workspace_id,
        }


class SnapshotWriter:
    """Builds the stored form in one buffer: the header's gzip member, then one member per kind,
    each written while its kind is listed (`section`). Nothing else holds the records."""

    def __init__(self, header: Header) -> None:
        self._buffer = io.BytesIO()
        head = json.dumps(header.to_json(), separators=(",", ":")).encode() + b"\n"
        # mtime=0: equal snapshots encode to equal bytes (the Cloud Storage store's retry check).
        self._buffer.write(gzip.compress(head, compresslevel=6, mtime=0))
        self.header_bytes = self._buffer.tell()
        self.counts: dict[str, int] = {}
        self.streamed = True

    def section(self, kind: str) -> Section:
        return Section(kind, self)

    def finish(self) -> bytes:
        return self._buffer.getvalue()


class Section:
    """One kind's records, appended to the snapshot as they are listed (a gzip member of its own).

    While the listing's order is the id order (as Instantly's cursor pagination lists them),
    each line goes straight into the compressed member and nothing decoded is kept. The first
    line out of order (or a repeated id) switches to the safe path: the member written so far is
    decoded into a list and cut off the buffer, later lines join the list, and closing sorts it
    (keeping the last copy of a repeated id) and writes it. That path holds the kind decoded
    once; the bytes are the same either way.
    """

    _CHUNK = 1000

    def __init__(self, kind: str, writer: SnapshotWriter) -> None:
        self.kind = kind
        self.count = 0
        self.streamed = True
        self._writer = writer
        self._buffer = writer._buffer
        self._start = self._buffer.tell()
        self._out: gzip.GzipFile | None = self._open()
        self._pending: list[str] = []
        self._last_key: str | None = None
        self._held: list[str] = []

    def _open(self) -> gzip.GzipFile:
        return gzip.GzipFile(fileobj=self._buffer, mode="wb", compresslevel=6, mtime=0)

    def add(self, line: str) -> None:
        if not self.streamed:
            self._held.append(line)
            return
        key = split_line(line)[0]
        if self._last_key is None or key > self._last_key:
            self._last_key = key
            self._pending.append(f"{self.kind}\t{line}\n")
            self.count += 1
            if len(self._pending) >= self._CHUNK:
                self._flush()
            return
        # Out of order: take back what was written, hold everything from here on.
        self._flush()
        self._close_member()
        with self._buffer.getbuffer() as view, view[self._start :] as tail:
            written = tail.tobytes()
        self._buffer.seek(self._start)
        self._buffer.truncate()
        self._held = list(_decoded(written))
        del written
        self._held.append(line)
        self.streamed = False
        self._out = self._open()

    def _flush(self) -> None:
        if self._pending and self._out is not None:
            self._out.write("".join(self._pending).encode())
            self._pending.clear()

    def _close_member(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def close(self) -> None:
        """Finish the member (idempotent)."""
        if self._out is None:
            return
        if not self.streamed:
            by_key = {split_line(line)[0]: line for line in self._held}  # last copy wins
            self._held = []
            ordered = sorted(by_key)
            self.count = len(ordered)
            for start in range(0, len(ordered), self._CHUNK):
                chunk = ordered[start : start + self._CHUNK]
                self._pending.extend(f"{self.kind}\t{by_key[key]}\n" for key in chunk)
                self._flush()
            del by_key, ordered
        self._flush()
        self._close_member()
        self._writer.counts[self.kind] = self.count
        self._writer.streamed = self._writer.streamed and self.streamed


def _decoded(member: bytes) -> Iterator[str]:
    with gzip.GzipFile(fileobj=io.BytesIO(member), mode="rb") as handle:
        for raw in handle:
            yield raw.decode().rstrip("\n").partition("\t")[2]


class StoredSnapshot:
    """A snapshot as read from its store: the header parsed, the records left compressed."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb") as handle:
                first = handle.readline()
            data = json.loads(first)
            if data.get("version") != FORMAT_VERSION:
                raise BackendError(
                    f"inventory snapshot format {data.get('version')!r} is not {FORMAT_VERSION}",
                    retryable=False,
                )
            self.header = Header(
                taken_at=datetime.fromisoformat(data["taken_at"]),
                workspace_id=str(data["workspace_id"]),
            )
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackendError(f"inventory snapshot is unreadable: {exc}", retryable=False) from exc

    def lines(self) -> Iterator[tuple[str, str]]:
        """(kind, record line) in stored order, decompressed as they are read."""
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(self._raw), mode="rb") as handle:
                handle.readline()
                for raw_line in handle:
                    kind, _, line = raw_line.decode().rstrip("\n").partition("\t")
                    yield kind, line
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise BackendError(f"inventory snapshot is unreadable: {exc}", retryable=False) from exc

    @property
    def size(self) -> int:
        return len(self._raw)
