"""The per-request log line's short path (`logs.emit_line`) and the line writer behind it.

`emit_line` must write exactly the line the logging machinery would, and step aside (write
nothing, answer False) whenever something else would see the record or the line holds something
to mask. `LineWriter` must keep every line whole and in order, and never make a thread wait for
another thread's write.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instantly_guard.linewriter import LineWriter
from instantly_guard.logs import bind_request_context, configure_logging, emit_line
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
