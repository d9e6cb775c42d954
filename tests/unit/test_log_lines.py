"""The per-request log line's short path (`logs.emit_line`) and the line writer behind it.

`emit_line` must write exactly the line the logging machinery would, and step aside (write
nothing, answer False) whenever something else would see the record or the line holds something
to mask. `LineWriter` must keep every line whole and in order, never make a thread wait for
another thread's write, and write a deferred line within its linger, before any line written
after it, and at the latest when the process exits (once, even across a fork).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instantly_guard.linewriter import MAX_DEFERRED, LineWriter
from instantly_guard.logs import (
    bind_request_context,
    configure_logging,
    emit_line,
    flush_lines,
    line_time,
)
from instantly_guard.secret import Secret

LOGGER = logging.getLogger("instantly_guard.webhook.test_lines")


@contextlib.contextmanager
def _only_ours() -> Iterator[io.StringIO]:
    """Our JSON handler as the root's only handler, as in a deployed function. Entered inside the
    test itself: pytest adds its capture handlers to the root at every phase."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    root.handlers[:] = []
    configure_logging("INFO", stream=stream, labels={"function": "test"}, text=False)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _both_ways(stream: io.StringIO, level: int, fields: dict[str, Any]) -> tuple[Any, Any]:
    """The line emit_line wrote and the one `Logger.log` wrote for the same record, less time."""
    start = len(stream.getvalue())
    assert emit_line(LOGGER, level, "webhook accepted (200)", fields)
    LOGGER.log(level, "webhook %s (%d)", "accepted", 200, extra={"fields": fields})
    short, ordinary = (json.loads(x) for x in stream.getvalue()[start:].splitlines())
    return (
        {k: v for k, v in short.items() if k != "time"},
        {k: v for k, v in ordinary.items() if k != "time"},
    )


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="@"), max_size=40),
)


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=8), _VALUES, max_size=8))
def test_the_short_path_writes_the_line_the_logger_would(fields: dict[str, Any]) -> None:
    with (
        _only_ours() as stream,
        bind_request_context("105445aa7843bc8bf206b12000100000/1;o=1", "p"),
    ):
        short, ordinary = _both_ways(stream, logging.INFO, fields)
    assert short == ordinary
    assert list(short) == list(ordinary)  # same keys in the same order


def test_base_keys_win_over_fields_and_a_secret_field_names_the_message() -> None:
    name = "instantly-guard-x"  # a managed secret's name, as rotation logs it
    fields = {"severity": "LIE", "logger": "other", "secret": name, "n": 1}
    with _only_ours() as stream:
        short, ordinary = _both_ways(stream, logging.WARNING, fields)
    assert short == ordinary
    assert short["severity"] == "WARNING"
    assert short["message"].startswith("instantly-guard-x: ")


@pytest.mark.parametrize(
    "value",
    ["jordan.lee@prospect.example", "Bearer abc.def.ghi", "sk-live-never-log-this-value-123"],
    ids=["email", "bearer", "registered"],
)
def test_a_line_with_something_to_mask_takes_the_ordinary_path(value: str) -> None:
    Secret("sk-live-never-log-this-value-123")  # registers the value with the redactor
    with _only_ours() as stream:
        assert not emit_line(LOGGER, logging.INFO, "webhook accepted (200)", {"workspace": value})
        assert stream.getvalue() == ""  # nothing written: the caller logs the ordinary way
        LOGGER.info("webhook accepted (200)", extra={"fields": {"workspace": value}})
        assert value not in stream.getvalue()
        assert len(_lines(stream)) == 1


def test_it_steps_aside_when_anything_else_would_see_the_record() -> None:
    with _only_ours() as stream:
        fields = {"outcome": "accepted"}
        assert emit_line(LOGGER, logging.INFO, "m", fields)
        assert not emit_line(LOGGER, logging.DEBUG, "m", fields)  # below the level

        extra = logging.Handler()
        logging.getLogger("instantly_guard").addHandler(extra)
        try:
            assert not emit_line(LOGGER, logging.INFO, "m", fields)
        finally:
            logging.getLogger("instantly_guard").removeHandler(extra)

        refuse_all = logging.Filter("nothing")
        LOGGER.addFilter(refuse_all)
        try:
            assert not emit_line(LOGGER, logging.INFO, "m", fields)
        finally:
            LOGGER.removeFilter(refuse_all)

        logging.disable(logging.INFO)
        try:
            assert not emit_line(LOGGER, logging.INFO, "m", fields)
        finally:
            logging.disable(logging.NOTSET)

        root = logging.getLogger()
        root.handlers.append(logging.NullHandler())
        try:
            assert not emit_line(LOGGER, logging.INFO, "m", fields)
        finally:
            root.handlers.pop()
        assert len(_lines(stream)) == 1


class _GatedStream(io.StringIO):
    """A stream whose first write waits until released: a write that takes its time."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == 1:
            self.entered.set()
            assert self.release.wait(10)
        return super().write(text)


def _writer(stream: io.StringIO) -> LineWriter:
    return LineWriter(logging.StreamHandler(stream))


def test_no_thread_waits_for_another_threads_write() -> None:
    stream = _GatedStream()
    writer = _writer(stream)
    first = threading.Thread(target=writer.write, args=("first",))
    first.start()
    assert stream.entered.wait(10)
    # The first thread is inside its write: these return at once, their lines queued.
    others = [threading.Thread(target=writer.write, args=(f"line {n}",)) for n in range(5)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(5)
        assert not thread.is_alive()
    assert stream.getvalue() == ""
    stream.release.set()
    first.join(10)
    assert stream.getvalue().splitlines() == ["first", *(f"line {n}" for n in range(5))]
    assert stream.writes == 2  # the queued lines went out together, written by the first thread


def test_many_threads_lines_are_whole_and_each_threads_in_order() -> None:
    stream = io.StringIO()
    writer = _writer(stream)
    threads = [
        threading.Thread(
            target=lambda t=t: [writer.write(f"{t}:{n}:{'x' * 50}") for n in range(300)]
        )
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    seen: dict[str, list[int]] = {}
    for line in stream.getvalue().splitlines():
        thread_id, n, pad = line.split(":")
        assert pad == "x" * 50
        seen.setdefault(thread_id, []).append(int(n))
    assert seen == {str(t): list(range(300)) for t in range(8)}


class _FailingOnce(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        return super().write(text)


def test_a_failed_write_is_reported_and_the_next_line_still_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = _FailingOnce()
    writer = _writer(stream)
    writer.write("lost")
    writer.write("kept")
    assert stream.getvalue() == "kept\n"
    assert "disk full" in capsys.readouterr().err  # logging's own report of a failed emit


def _until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_deferred_line_waits_then_goes_out_within_the_linger() -> None:
    stream = io.StringIO()
    writer = LineWriter(logging.StreamHandler(stream), linger=0.05)
    writer.defer("first")
    writer.defer("second")
    assert stream.getvalue() == ""  # held back, to share one write
    assert _until(lambda: stream.getvalue() == "first\nsecond\n")  # by the background thread
    writer.defer("third")  # a later round wakes it again
    assert _until(lambda: stream.getvalue().endswith("second\nthird\n"))


def test_a_written_line_goes_out_at_once_after_every_deferred_one() -> None:
    stream = io.StringIO()
    writer = LineWriter(logging.StreamHandler(stream), linger=60)
    writer.defer("a")
    writer.defer("b")
    writer.write("c")
    assert stream.getvalue() == "a\nb\nc\n"


class _Starved(LineWriter):
    """A writer whose background thread never gets to run, as under a throttled CPU."""

    def _flush_later(self) -> None:
        return None


def test_a_line_past_its_linger_goes_out_with_the_next_one_if_nothing_else_wrote_it() -> None:
    stream = io.StringIO()
    writer = _Starved(logging.StreamHandler(stream), linger=0.05)
    writer.defer("old")
    time.sleep(0.1)
    assert stream.getvalue() == ""  # nothing ran to write it
    writer.defer("new")
    assert stream.getvalue() == "old\nnew\n"


def test_a_full_queue_is_written_by_the_line_that_fills_it() -> None:
    stream = io.StringIO()
    writer = LineWriter(logging.StreamHandler(stream), linger=60)
    for n in range(MAX_DEFERRED - 1):
        writer.defer(str(n))
    assert stream.getvalue() == ""
    writer.defer("last")
    assert stream.getvalue().splitlines() == [*map(str, range(MAX_DEFERRED - 1)), "last"]


def test_a_record_logged_after_a_deferred_line_comes_after_it() -> None:
    with _only_ours() as stream:
        assert emit_line(LOGGER, logging.INFO, "held", {"n": 1}, defer=True)
        assert stream.getvalue() == ""
        LOGGER.warning("at once")
        assert [line["message"] for line in _lines(stream)] == ["held", "at once"]
        assert emit_line(LOGGER, logging.INFO, "held again", {}, defer=True)
        flush_lines()
        assert _lines(stream)[-1]["message"] == "held again"


_EXIT_SCRIPT = """
import logging, os, sys
from instantly_guard.logs import configure_logging, emit_line
configure_logging("INFO", text=False)
log = logging.getLogger("exit-test")
emit_line(log, logging.INFO, "parent before fork", {}, defer=True)
child = os.fork()
if child == 0:
    emit_line(log, logging.INFO, "child", {}, defer=True)
    sys.exit(0)  # the child's exit writes its own line, not the parent's again
os.waitpid(child, 0)
emit_line(log, logging.INFO, "parent after fork", {}, defer=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_deferred_lines_are_written_at_exit_once_each_across_a_fork() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    messages = sorted(json.loads(line)["message"] for line in done.stdout.splitlines())
    assert messages == ["child", "parent after fork", "parent before fork"], done.stderr


_MOMENTS = st.one_of(
    st.floats(0, 4e9, allow_nan=False),
    st.integers(0, 4_000_000_000).map(float),  # whole seconds: no fraction written
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999996),  # rounds up into the next second
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.0000005),
)


@settings(max_examples=2000, deadline=None)
@given(created=_MOMENTS)
def test_line_time_is_what_datetime_writes(created: float) -> None:
    assert line_time(created) == datetime.fromtimestamp(created, UTC).isoformat()


def test_configuring_logging_again_writes_held_lines_where_they_were_logged_to() -> None:
    with _only_ours() as first:
        assert emit_line(LOGGER, logging.INFO, "held", {}, defer=True)
        second = io.StringIO()
        configure_logging("INFO", stream=second, text=False)
        assert [line["message"] for line in _lines(first)] == ["held"]
        assert second.getvalue() == ""
