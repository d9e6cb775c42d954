"""The inventory's snapshot: every kind's records, sorted by id, in one gzip'd text object.

    {"version": 1, "taken_at": "...", "workspace_id": "...", "counts": {"member": 3, ...}}
    member\\t"<id>"\\t{"fields": {...}, "name": "..."}
    ...                                     (kinds in `records.KINDS` order, ids ascending)

Compact on purpose: a record holds only what is compared (about 100 bytes for a block-list entry;
100k entries compress to about 2 MB). A stored snapshot is never parsed whole: `StoredSnapshot`
keeps the compressed bytes and decompresses line by line while it is compared, so a run holds one
decoded copy of the records (the current ones), never two.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from instantly_guard.errors import BackendError
from instantly_guard.inventory.records import KINDS

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


def encode(header: Header, sections: Mapping[str, Sequence[str]]) -> bytes:
    """The stored form of a snapshot; `sections` maps each kind to its sorted record lines."""
    buffer = io.BytesIO()
    # mtime=0: equal snapshots encode to equal bytes (the Cloud Storage store's retry check).
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as out:
        out.write(json.dumps(header.to_json(), separators=(",", ":")).encode() + b"\n")
        for kind in KINDS:
            chunk: list[str] = []
            for line in sections.get(kind, ()):
                chunk.append(f"{kind}\t{line}\n")
                if len(chunk) >= 1000:
                    out.write("".join(chunk).encode())
                    chunk.clear()
            out.write("".join(chunk).encode())
    return buffer.getvalue()


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
