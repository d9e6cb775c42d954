"""Cloud Function `rotate_api_key`: rotates managed Instantly keys and webhook secrets.

Fed by a Pub/Sub push subscription on the topic Secret Manager notifies when a managed secret is
due (SECRET_ROTATE), and by the scheduled sweep message; functions-framework presents each push as
a Pub/Sub `messagePublished` CloudEvent. The subscription retries with backoff and dead-letters
(see docs/deploy.md for why it is not an Eventarc trigger).
Thin by design: decoding, the protocol and the ack/retry decision live in
`instantly_guard.rotation` (see `function.py`). Collaborators are built once per instance, on the
first event (cold start), from the environment; nothing is read or connected at import time.

Returning acknowledges the message; raising makes Pub/Sub redeliver it, which we do only for
failures a later attempt can fix.
"""

from __future__ import annotations

import os
from typing import Any

import functions_framework

from instantly_guard.logs import configure_logging
from instantly_guard.rotation.function import RetryRotationError, RotationFunction, get_function

_logging_ready = False


def _function() -> RotationFunction:
    global _logging_ready
    if not _logging_ready:
        level = os.environ.get("LOG_LEVEL", "INFO").upper()
        configure_logging(level if level in {"DEBUG", "INFO", "WARNING", "ERROR"} else "INFO")
        _logging_ready = True
    # A configuration error raises here, so the message is redelivered until a fixed
    # deployment can handle it (or it reaches the dead-letter topic): a rotation is never lost.
    return get_function(os.environ)


@functions_framework.cloud_event
def rotate_api_key(cloud_event: Any) -> None:
    handled = _function().handle(
        cloud_event["type"], cloud_event.data, event_id=str(cloud_event["id"])
    )
    if handled.retry:
        raise RetryRotationError(f"rotation not done ({handled.outcome}); Pub/Sub will redeliver")
