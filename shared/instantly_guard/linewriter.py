"""Lines written to a stream by whichever thread finds nobody writing (see `LineWriter`)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Final

LINGER: Final = 0.1
"""Seconds a deferred line may wait for others to share its write."""

MAX_DEFERRED: Final = 1000
"""Deferred lines held at most; the line that reaches it is written at once, with the others."""


class LineWriter:
    """Writes lines to a handler's stream without making a thread wait for another's write.

    A handler's lock is held across the write to the stream, a system call during which
    Python lets other threads run: under a threaded server the next request's thread then
    blocks on that lock, and each line costs two thread switches. Here a line is queued under a
    short lock that is never held across a write; the first thread to find nobody writing
    becomes the writer and writes everything queued, including lines queued while it wrote,
    before it returns. So lines keep their order, none waits behind another thread's write, and
    under load one write carries many lines. A line is never left behind: the writer loops until
    the queue is empty.

    `defer` queues a line without writing: a background thread writes what is queued `linger`
    seconds after the first deferred line, unless a `write`, a `flush`, a later `defer` that
    finds the first line older than `linger` or the queue full, or the process's exit comes
    first. For a line written on every request: its own write, with the thread switches it
    invites, cost more than building it (docs/performance.md).
    """

    def __init__(self, handler: logging.StreamHandler[Any], *, linger: float = LINGER) -> None:
        self._handler = handler
        self._linger = linger
        self._start()
        _writers.add(self)

    def _start(self) -> None:
        """The state a new writer, or this one in a forked child, starts from."""
        self._lock = threading.Lock()
        self._queued: list[str] = []
        self._writing = False
        self._since = 0.0  # monotonic time the oldest queued line was queued
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    def write(self, line: str) -> None:
        """Write `line` now, after every line queued before it."""
        with self._lock:
            self._queued.append(line)
            if self._writing:
                return  # the writing thread takes it
            self._writing = True
        self._drain()

    def defer(self, line: str) -> None:
        """Queue `line` to be written within `linger` seconds (see the class docstring)."""
        now = time.monotonic()
        with self._lock:
            queued = self._queued
            queued.append(line)
            if len(queued) == 1:
                self._since = now
                first = True
            elif len(queued) < MAX_DEFERRED and now - self._since < self._linger:
                return
            else:  # due: the flusher is late (a throttled CPU between requests) or the queue full
                first = False
            if first and self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_later, name="log-line-flusher", daemon=True
                )
                self._flusher.start()
        if first:
            self._wake.set()
        else:
            self._write_queued()

    def _write_queued(self) -> None:
        """Write what is queued unless another thread is writing (it writes the queue too)."""
        with self._lock:
            if self._writing or not self._queued:
                return
            self._writing = True
        self._drain()

    def flush(self, timeout: float = 1.0) -> None:
        """Write every queued line; wait up to `timeout` seconds for another thread's write."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._writing:
                    if not self._queued:
                        return
                    self._writing = True
                    break
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)
        self._drain()

    def _flush_later(self) -> None:
        wake, linger = self._wake, self._linger
        while True:
            wake.wait()
            wake.clear()
            time.sleep(linger)
            self._write_queued()

    def _drain(self) -> None:
        """Write batches until the queue is empty; the caller has set `_writing`."""
        try:
            while True:
                with self._lock:
                    batch, self._queued = self._queued, []
                    if not batch:
                        self._writing = False
                        return
                self._write(batch)
        except BaseException:  # an interrupt: the next line's thread writes what is queued
            with self._lock:
                self._writing = False
            raise

    def _write(self, batch: list[str]) -> None:
        handler = self._handler
        terminator = handler.terminator
        handler.acquire()  # the stream is shared with the handler's own records
        try:
            handler.stream.write(terminator.join(batch) + terminator)
            handler.flush()
        except Exception:  # as StreamHandler.emit does: report on stderr, never fail the caller
            handler.handleError(
                logging.makeLogRecord({"msg": "%d log lines", "args": (len(batch),)})
            )
        finally:
            handler.release()


_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent writes what it had queued; its flusher thread and any lock a parent thread held
    # do not exist here. (gunicorn forks its workers from a master that may have logged.)
    for writer in list(_writers):
        writer._start()


def _flush_all() -> None:
    for writer in list(_writers):
        writer.flush()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all)
