"""The webhook receiver (issue 3): only Instantly gets in, nothing accepted is ever lost.

- `secrets`: the secret payload format (plain or `{"current", "previous", "previous_expires_at"}`)
  and sources that re-read a mounted file when it changes;
- `auth`: constant-time secret check, optional HTTP Basic, optional source networks;
- `payload`: pydantic models of Instantly's events, the deterministic event id;
- `dedupe`: the recent-id memory that answers immediate duplicates;
- `handler`: `handle(request, deps) -> Response`, the order of checks and the durable hand-off;
- `settings`: `WebhookSettings` from the environment; `receiver`: `build_receiver(env)`, and
  `LazyReceiver`, which builds it on first use and retries a failed build.

The names below are imported on first use, so that `instantly_guard.webhook.secrets` (which the
rotation function uses to write secret versions) does not load pydantic and the receiver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from instantly_guard.webhook.handler import Deps, RequestLike, Response, handle
    from instantly_guard.webhook.receiver import LazyReceiver, Receiver, build_receiver

__all__ = [
    "Deps",
    "LazyReceiver",
    "Receiver",
    "RequestLike",
    "Response",
    "build_receiver",
    "handle",
]

_HOMES = {
    "Deps": "handler",
    "RequestLike": "handler",
    "Response": "handler",
    "handle": "handler",
    "LazyReceiver": "receiver",
    "Receiver": "receiver",
    "build_receiver": "receiver",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
