"""Lines written to a stream by whichever thread finds nobody writing (see `LineWriter`)."""

from __future__ import annotations

import logging
import threading
from typing import Any


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
    """

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        self._queued: list[str] = []
        self._writing = False

    def write(self, line: str) -> None:
        with self._lock:
            self._queued.append(line)
            if self._writing:
                return  # the writing thread takes it
            self._writing = True
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
