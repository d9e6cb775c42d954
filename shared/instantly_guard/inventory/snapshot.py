"""The inventory's snapshot: every kind's records, sorted by id, in one gzip'd text object.

    {"version": 1, "taken_at": "...", "workspace_id": "...", "counts": {"member": 3, ...}}
    member\\t"<id>"\\t{"fields": {...}, "name": "..."}
    ...                                     (kinds in `records.KINDS` order, ids ascending)

The header and each kind are gzip members of their own, concatenated (one stream to a reader).
Compact on purpose: a record holds only what is compared (about 100 bytes for a block-list entry;
10k members and 100k entries compress to about 2.7 MB). Neither side is ever decoded whole: the
stored snapshot is decompressed line by line while it is compared, and the current records are
compressed as they are listed (`Section`), so a run holds the two compressed snapshots and one
page, unless a listing comes out of id order (then that kind is held decoded once and sorted).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from instantly_guard.errors import BackendError
from instantly_guard.inventory.records import KINDS, split_line

FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Header:
    taken_at: datetime
    workspace_id: str
    counts: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "taken_at": self.taken_at.isoformat(),
            "workspace_id": self.workspace_id,
            "counts": dict(self.counts),
        }


def _member(data: bytes) -> bytes:
    # mtime=0: equal snapshots encode to equal bytes (the Cloud Storage store's retry check).
    return gzip.compress(data, compresslevel=6, mtime=0)


class Section:
    """One kind's records, kept compressed while they are read (a gzip member of its own).

    Records are added in listing order. While that order is the id order (as Instantly's cursor
    pagination lists them), each line goes straight into the compressed stream and nothing
    decoded is kept. The first line out of order (or a repeated id) switches the section to the
    safe path: what was written is decoded into a list, later lines join it, and closing sorts
    it (keeping the last copy of a repeated id). That path holds the kind decoded once.
    """

    _CHUNK = 1000

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.streamed = True
        self._buffer = io.BytesIO()
        self._out: gzip.GzipFile | None = self._writer()
        self._pending: list[str] = []
        self._last_key: str | None = None
        self._held: list[str] = []
        self._closed: bytes | None = None

    def _writer(self) -> gzip.GzipFile:
        self._buffer = io.BytesIO()
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
        # Out of order: decode what was written, hold everything from here on.
        self._flush()
        written = self._finish()
        self._held = list(_decoded(written))
        self._held.append(line)
        self.streamed = False
        self._out = self._writer()

    def _flush(self) -> None:
        if self._pending and self._out is not None:
            self._out.write("".join(self._pending).encode())
            self._pending.clear()

    def _finish(self) -> bytes:
        if self._out is not None:
            self._out.close()
            self._out = None
        return self._buffer.getvalue()

    def close(self) -> bytes:
        """The compressed member (idempotent)."""
        if self._closed is not None:
            return self._closed
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
        self._closed = self._finish()
        self._buffer = io.BytesIO()
        return self._closed

    def lines(self) -> Iterator[str]:
        """The closed section's record lines, in id order, decompressed as they are read."""
        return _decoded(self.close())


def _decoded(member: bytes) -> Iterator[str]:
    with gzip.GzipFile(fileobj=io.BytesIO(member), mode="rb") as handle:
        for raw in handle:
            yield raw.decode().rstrip("\n").partition("\t")[2]


def encode(header: Header, sections: Mapping[str, Section]) -> bytes:
    """The stored form: the header as one gzip member, then each kind's member in `KINDS` order
    (gzip readers read consecutive members as one stream)."""
    head = _member(json.dumps(header.to_json(), separators=(",", ":")).encode() + b"\n")
    # One join: `head + b"".join(...)` would hold the records' bytes twice more at once.
    return b"".join([head, *(sections[kind].close() for kind in KINDS if kind in sections)])


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
                counts={str(k): int(v) for k, v in data["counts"].items()},
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
