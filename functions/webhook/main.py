"""Cloud Function `receive_webhook`: the public endpoint Instantly delivers webhook events to.

Thin by design: every rule lives in `instantly_guard.webhook` (see `handler.py` for the order of
checks). The receiver is built once per instance, on the first request (cold start), from the
environment; nothing is read or connected at import time.
"""

from __future__ import annotations

import os
import threading

import flask
import functions_framework

from instantly_guard.logs import configure_logging
from instantly_guard.webhook import Receiver, build_receiver

_receiver: Receiver | None = None
_lock = threading.Lock()


def _get_receiver() -> Receiver:
    global _receiver
    if _receiver is None:
        with _lock:
            if _receiver is None:
                receiver = build_receiver(os.environ)
                configure_logging(receiver.log_level)
                _receiver = receiver
    return _receiver


@functions_framework.http
def receive_webhook(request: flask.Request) -> flask.Response:
    response = _get_receiver().handle(request)
    # An iterable body marks the response as streamed, which stops functions-framework's
    # after-request hook from reading whatever is left of the request body into memory (a
    # refused or oversized body is never read past the limit; the server discards the rest).
    return flask.Response(
        iter((response.body,)),
        status=response.status,
        headers={**response.headers, "Content-Length": str(len(response.body))},
    )
