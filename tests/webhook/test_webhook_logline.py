"""The line of an accepted or duplicate delivery is formatted directly (`webhook.logline`) and
may wait a moment to share its write: it must be the very line the logging machinery writes for
the same delivery, key for key and in the same order, whatever the payload holds."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_support import SECRET, RecordingPublisher, local_env

from instantly_guard.logs import configure_logging, flush_lines
from instantly_guard.redaction import json_is_clean
from instantly_guard.webhook.receiver import build_receiver
from instantly_guard.webhook.testing import delivery, sample_event

TRACE = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
_runs = itertools.count()


@contextlib.contextmanager
def _stdout_handler(*, ordinary: bool) -> Iterator[io.StringIO]:
    """Our JSON handler as the root's only one, as in a deployed function; with `ordinary`, a
    filter that lets everything through, which is enough to send every record the ordinary way.
    Entered inside the test: pytest adds its capture handlers to the root at every phase."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    root.handlers[:] = []
    configure_logging("INFO", stream=stream, text=False)
    if ordinary:
        root.handlers[0].addFilter(logging.Filter())
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _deliver(
    state: Path, body: bytes, headers: dict[str, str], *, ordinary: bool
) -> tuple[list[str], int]:
    """The lines of one delivery and its retry, and how many were written before a flush."""
    with _stdout_handler(ordinary=ordinary) as stream:
        env = local_env(state / str(next(_runs)), GOOGLE_CLOUD_PROJECT="p")
        receiver = build_receiver(env, publisher=RecordingPublisher())
        for _ in range(2):  # accepted, then duplicate
            response = receiver.handle(delivery(body, SECRET, extra_headers=headers))
            assert response.status == 200
        at_once = stream.getvalue().count("\n")
        flush_lines()
        # Split on newlines only: a line may hold U+2028 or U+0085, which JSON leaves as they are.
        return stream.getvalue().split("\n")[:-1], at_once


# ASCII with quotes, backslashes and controls (the direct path), or any code point, lone
# surrogates included (non-ASCII text goes the ordinary way: it may hide a scheme to mask).
_TEXT = st.one_of(st.text(st.characters(codec="ascii"), max_size=30), st.text(max_size=30))
_EVENTS = st.fixed_dictionaries(
    {
        "event_type": st.one_of(
            st.sampled_from(["reply_received", "email_sent", "lead_interested"]),
            _TEXT.filter(str.strip),
        ),
        "workspace": st.one_of(st.none(), _TEXT),
        "campaign_id": st.one_of(st.none(), _TEXT),
    },
    optional={"lead_email": st.one_of(st.none(), _TEXT), "custom_field": _TEXT},
)


@settings(max_examples=80, deadline=None)
@given(fields=_EVENTS, traced=st.booleans())
def test_the_direct_line_is_the_ordinary_line(
    tmp_path_factory: Any, fields: dict[str, Any], traced: bool
) -> None:
    state = tmp_path_factory.mktemp("logline")
    body = json.dumps(sample_event(**fields)).encode()
    headers = TRACE if traced else {}
    direct, at_once = _deliver(state, body, headers, ordinary=False)
    ordinary, _ = _deliver(state, body, headers, ordinary=True)
    assert [json.loads(line)["outcome"] for line in ordinary] == ["accepted", "duplicate"]
    for mine, theirs in zip(map(_sans_clock, direct), map(_sans_clock, ordinary), strict=True):
        assert mine == theirs  # the same text, the same keys in the same order
    # A line holding nothing to mask went the direct way: held back until the flush. One that
    # may hold something (an "@", "bearer", non-ASCII text) went the ordinary way, at once.
    assert at_once == (0 if json_is_clean(ordinary[0]) else 2)


def _sans_clock(line: str) -> str:
    """The line less its time and latency, the two values that differ between two runs."""
    fields = json.loads(line)
    for key in ("time", "latency_ms"):  # a payload's quotes are escaped: only the key matches
        line = line.replace(f'"{key}": {json.dumps(fields[key])}', f'"{key}": -', 1)
    return line


def test_a_plain_delivery_takes_the_direct_path_and_carries_its_trace(tmp_path: Path) -> None:
    body = json.dumps(sample_event("reply_received", lead_email="lee@example.com")).encode()
    lines, at_once = _deliver(tmp_path, body, TRACE, ordinary=False)
    direct = [json.loads(line) for line in lines]
    assert at_once == 0
    assert direct[0]["logging.googleapis.com/trace"] == (
        "projects/p/traces/105445aa7843bc8bf206b12000100000"
    )
    assert direct[0]["lead"].startswith("email:")
    assert direct[0]["message_id"] == "m-1"
    assert "message_id" not in direct[1]  # a duplicate publishes nothing
