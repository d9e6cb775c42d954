"""Two sorted streams of record lines -> the records that differ.

The stored snapshot is read as a stream (decompressed line by line), the current records are one
sorted list; the merge walks both once, in id order, holding one line of each at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from instantly_guard.inventory.records import split_line


class _Peekable:
    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = iter(items)
        self._head: tuple[str, str] | None = None
        self._done = False
        self._advance()

    def _advance(self) -> None:
        try:
            self._head = next(self._items)
        except StopIteration:
            self._head, self._done = None, True

    def take_kind(self, kind: str) -> Iterator[str]:
        """The lines of `kind` at the head of the stream (kinds are stored in a fixed order)."""
        while self._head is not None and self._head[0] == kind:
            line = self._head[1]
            self._advance()
            yield line


def kind_lines(
    stored: Iterable[tuple[str, str]], kinds: Iterable[str]
) -> Iterator[tuple[str, Iterator[str]]]:
    """(kind, its stored lines) for each kind in order; a kind absent from the stream is empty.
    Each kind's iterator must be consumed before the next is taken."""
    cursor = _Peekable(stored)
    for kind in kinds:
        yield kind, cursor.take_kind(kind)


def differences(old: Iterable[str], new: Iterable[str]) -> Iterator[tuple[str | None, str | None]]:
    """(old line, new line) for every id whose record differs: (line, None) removed, (None,
    line) added, (line, line) changed. Both inputs sorted by id (their lines' sort key)."""
    olds, news = iter(old), iter(new)
    a, b = next(olds, None), next(news, None)
    while a is not None or b is not None:
        if b is None or (a is not None and split_line(a)[0] < split_line(b)[0]):
            yield a, None
            a = next(olds, None)
        elif a is None or split_line(b)[0] < split_line(a)[0]:
            yield None, b
            b = next(news, None)
        else:
            if a != b:
                yield a, b
            a, b = next(olds, None), next(news, None)
