"""Cloud Function `receive_webhook`: the public endpoint Instantly delivers webhook events to.

Thin by design: every rule lives in `instantly_guard.webhook` (see `handler.py` for the order of
checks). The receiver is built once per instance, on the first request (cold start), from the
environment; nothing is read or connected at import time. A build that fails (configuration or
otherwise) answers 503 with Retry-After, is logged once, and is tried again a few seconds later
(`instantly_guard.lazy`, docs/lazy-build.md).
"""

from __future__ import annotations

import os

import flask
import functions_framework

from instantly_guard.lazy import BuildFailedError, Lazy, unavailable_headers
from instantly_guard.webhook.handler import unavailable
from instantly_guard.webhook.receiver import wire_receiver
from instantly_guard.webhook.wsgi import WsgiRequest

_receiver = Lazy(lambda: wire_receiver(os.environ), what="webhook receiver", env=lambda: os.environ)


@functions_framework.http
def receive_webhook(request: flask.Request) -> flask.Response:
    try:
        response = _receiver.get().handle(WsgiRequest(request))
    except BuildFailedError as exc:
        response = unavailable(unavailable_headers(exc))
    if response.status == 200:
        # A 200 means the whole body was read (to its end, within the limit): a plain body is
        # cheaper, and the after-request hook below has nothing left to read. Headers are added
        # one by one: a mapping passed to the constructor is copied and checked twice over.
        content_type = response.headers.get("Content-Type", "application/json")
        answer = flask.Response(response.body, status=200, content_type=content_type)
        for name, value in response.headers.items():
            if name != "Content-Type":
                answer.headers.add(name, value)
        return answer
    # An iterable body marks the response as streamed, which stops functions-framework's
    # after-request hook from reading whatever is left of the request body into memory (a
    # refused or oversized body is never read past the limit; the server discards the rest).
    return flask.Response(
        iter((response.body,)),
        status=response.status,
        headers={**response.headers, "Content-Length": str(len(response.body))},
    )
