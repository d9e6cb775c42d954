"""Cloud Function `rotate_api_key`: rotates managed Instantly keys and webhook secrets.

Fed by a Pub/Sub push subscription on the topic Secret Manager notifies when a managed secret is
due (SECRET_ROTATE), and by the scheduled sweep message. An HTTP function, not a CloudEvent one:
the push envelope arrives as it is sent, with empty fields omitted (TOPIC_CONFIGURED has no
`data`), which functions-framework's CloudEvent conversion answers 400 and the subscription would
retry into the dead-letter topic. The library reads every shape (`events.decode_push`), CloudEvents
included. The subscription retries with backoff and dead-letters (docs/deploy.md).
Thin by design: decoding, the protocol and the ack/retry decision live in
`instantly_guard.rotation` (see `function.py`). Collaborators are built once per instance, on the
first request (cold start), from the environment; nothing is read or connected at import time.

A 2xx answer acknowledges the message; any other makes Pub/Sub redeliver it, which we do only for
failures a later attempt can fix. A failed build (configuration included) raises
`BuildFailedError` (answered 500): the message is redelivered until a fixed deployment handles it
or it reaches the dead-letter topic, so a rotation is never lost (`instantly_guard.lazy`,
docs/lazy-build.md).
"""

from __future__ import annotations

import os
from typing import Any

import functions_framework

from instantly_guard.lazy import Lazy
from instantly_guard.rotation.builder import build_function

_function = Lazy(
    lambda: build_function(os.environ),
    what="rotation function",
    env=lambda: os.environ,
)


_PLAIN = {"Content-Type": "text/plain; charset=utf-8"}  # an outcome word, not a page


@functions_framework.http
def rotate_api_key(request: Any) -> tuple[str, int, dict[str, str]]:
    handled = _function.get().handle_push(request.headers, request.get_data())
    return handled.outcome, handled.status, _PLAIN
