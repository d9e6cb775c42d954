"""Cloud Function `receive_webhook`: the public endpoint Instantly delivers webhook events to.

Thin by design: every rule lives in `instantly_guard.webhook` (see `handler.py` for the order of
checks). The receiver is built once per instance, on the first request (cold start), from the
environment; nothing is read or connected at import time. A build that fails (configuration or
otherwise) answers 503 and logs the problem once; an unexpected failure is retried at most every
few seconds (`instantly_guard.webhook.receiver.LazyReceiver`).
"""

from __future__ import annotations

import os

import flask
import functions_framework

from instantly_guard.logs import configure_logging
from instantly_guard.webhook import LazyReceiver, Receiver


def _configure(receiver: Receiver) -> None:
    configure_logging(receiver.log_level)


_receiver = LazyReceiver(lambda: os.environ, on_build=_configure)


@functions_framework.http
def receive_webhook(request: flask.Request) -> flask.Response:
    response = _receiver.get().handle(request)
    if response.status == 200:
        # A 200 means the whole body was read (to its end, within the limit): a plain body is
        # cheaper, and the after-request hook below has nothing left to read.
        return flask.Response(response.body, status=200, headers=response.headers)
    # An iterable body marks the response as streamed, which stops functions-framework's
    # after-request hook from reading whatever is left of the request body into memory (a
    # refused or oversized body is never read past the limit; the server discards the rest).
    return flask.Response(
        iter((response.body,)),
        status=response.status,
        headers={**response.headers, "Content-Length": str(len(response.body))},
    )
