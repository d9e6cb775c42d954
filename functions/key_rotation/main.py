"""Cloud Function `rotate_api_key`: rotates managed Instantly keys and webhook secrets.

Fed by a Pub/Sub push subscription on the topic Secret Manager notifies when a managed secret is
due (SECRET_ROTATE), and by the scheduled sweep message; functions-framework presents each push as
a Pub/Sub `messagePublished` CloudEvent. The subscription retries with backoff and dead-letters
(see docs/deploy.md for why it is not an Eventarc trigger).
Thin by design: decoding, the protocol and the ack/retry decision live in
`instantly_guard.rotation` (see `function.py`). Collaborators are built once per instance, on the
first event (cold start), from the environment; nothing is read or connected at import time.

Returning acknowledges the message; raising makes Pub/Sub redeliver it, which we do only for
failures a later attempt can fix. A failed build (configuration included) raises
`BuildFailedError`: the message is redelivered until a fixed deployment handles it or it reaches
the dead-letter topic, so a rotation is never lost (`instantly_guard.lazy`, docs/lazy-build.md).
"""

from __future__ import annotations

import os
from typing import Any

import functions_framework

from instantly_guard.lazy import Lazy
from instantly_guard.rotation.builder import build_rotator
from instantly_guard.rotation.function import RetryRotationError, RotationFunction

_function = Lazy(
    lambda: RotationFunction(build_rotator(os.environ)),
    what="rotation function",
    env=lambda: os.environ,
)


@functions_framework.cloud_event
def rotate_api_key(cloud_event: Any) -> None:
    handled = _function.get().handle(
        cloud_event["type"], cloud_event.data, event_id=str(cloud_event["id"])
    )
    if handled.retry:
        raise RetryRotationError(f"rotation not done ({handled.outcome}); Pub/Sub will redeliver")
