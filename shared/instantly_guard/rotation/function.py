"""The rotation function's logic, behind the thin entry point `functions/key_rotation/main.py`.

`RotationFunction.handle_push` decodes one HTTP request (a Pub/Sub push envelope, or a
CloudEvent: `events.decode_push`), runs it, and decides its fate, answered by `Handled.status`
(200 acknowledges, 500 makes Pub/Sub redeliver):

- acknowledge, ERROR `rotation_event_refused`: a SECRET_ROTATE the admission policy refuses
  (another project, a timestamp far from its publishTime or from now: `admission.py`);
- acknowledge (return): ignored event types (SECRET_VERSION_ADD, TOPIC_CONFIGURED, ...), a
  malformed message, a secret that is not managed, a duplicate, a finished rotation or sweep,
  and permanent failures (bad declaration, missing scope, no admin key): redelivering cannot
  fix those, so they are logged at ERROR (`rotation_failed: true`, for the alert) and dropped;
- retry (500): failures a later attempt can fix: Instantly 5xx/429/timeouts,
  a failed key test, a Secret Manager outage, a lost compare-and-swap, another delivery holding
  the lease, and anything unexpected. The push subscription (terraform/pubsub.tf) retries with
  backoff and has a dead-letter topic, so a failure that never clears ends there instead of
  looping forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from instantly_guard.errors import GuardError
from instantly_guard.rotation.admission import EventPolicy
from instantly_guard.rotation.engine import Rotator
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.events import (
    Decoded,
    Ignored,
    RotateRequest,
    decode_cloud_event,
    decode_push,
)
from instantly_guard.rotation.results import Outcome, describe_results

_log = logging.getLogger("instantly_guard.rotation.function")


# Pub/Sub push acknowledges on 102, 200, 201, 202 and 204; anything else is redelivered.
ACK_STATUS = 200
RETRY_STATUS = 500


@dataclass(frozen=True, slots=True)
class Handled:
    outcome: str
    retry: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        """The HTTP answer to the push: the one place a fate becomes a status."""
        return RETRY_STATUS if self.retry else ACK_STATUS


def is_retryable(exc: BaseException) -> bool:
    """Our errors say whether another attempt can help; anything else is assumed to (the
    protocol is idempotent, and the dead-letter topic bounds the attempts)."""
    if isinstance(exc, GuardError):
        return bool(getattr(exc, "retryable", False))
    return True


class RotationFunction:
    """Holds the rotator built once per instance; `handle` is called per delivery."""

    def __init__(
        self,
        rotator: Rotator,
        *,
        events: EventPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.rotator = rotator
        # Only Secret Manager has regional secrets (`GcpSecretStore.location`); others are global.
        self._location: str | None = getattr(rotator.store, "location", None)
        self.events = events if events is not None else EventPolicy()
        self._clock = clock if clock is not None else rotator.now

    def handle_push(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """One HTTP request: a Pub/Sub push envelope (any subset of its fields) or a CloudEvent."""
        delivery = decode_push(headers, body)
        return self._run(delivery.decoded, delivery.event_id)

    def handle(self, event_type: str | None, data: Any, *, event_id: str = "") -> Handled:
        """One CloudEvent already parsed (its `type` and `data`)."""
        return self._run(decode_cloud_event(event_type, data), event_id)

    def _run(self, decoded: Decoded, event_id: str) -> Handled:
        started = time.monotonic()
        fields: dict[str, Any] = {"event_id": event_id}
        if isinstance(decoded, Ignored):
            level = logging.WARNING if decoded.malformed else logging.INFO
            _log.log(
                level,
                "message acknowledged without action: %s",
                decoded.reason,
                extra={"fields": {**fields, "event_type": decoded.event_type}},
            )
            return Handled("malformed" if decoded.malformed else "ignored")
        if isinstance(decoded, RotateRequest) and decoded.location != self._location:
            # The same name elsewhere is another secret: rotating it would be worse than not.
            _log.error(
                "SECRET_ROTATE for a secret in another location than this function's store: "
                "not rotated (deploy a rotation with GUARD_SECRET_LOCATION set to its location)",
                extra={
                    "fields": {
                        **fields,
                        "secret": decoded.secret,
                        "secret_location": decoded.location or "global",
                        "store_location": self._location or "global",
                        "rotation_failed": True,
                    }
                },
            )
            return Handled("wrong-location")
        if isinstance(decoded, RotateRequest):
            refusal = self.events.refusal(decoded, self._clock())
            if refusal is not None:
                _log.error(
                    "rotation event refused: %s",
                    refusal,
                    extra={
                        "fields": {
                            **fields,
                            "secret": decoded.secret,
                            "project": decoded.project,
                            "message_id": decoded.message_id,
                            "rotation_event_refused": True,
                        }
                    },
                )
                return Handled("refused")
        try:
            if isinstance(decoded, RotateRequest):
                fields.update(secret=decoded.secret, message_id=decoded.message_id)
                result = self.rotator.handle(decoded)
                handled = Handled(
                    result.outcome.value,
                    detail={
                        "rotation_id": result.rotation_id,
                        "current_version": result.current_version,
                        "revoked_versions": result.revoked_versions,
                    },
                )
            else:
                fields.update(message_id=decoded.message_id)
                results = self.rotator.sweep()
                failed = [name for name, r in results.items() if isinstance(r, Exception)]
                handled = Handled("swept", detail={"secrets": describe_results(results)})
                if failed:
                    # The next sweep retries them; a redelivery would redo the healthy ones too.
                    _log.error(
                        "sweep left failures",
                        extra={"fields": {**fields, "failed": failed, "rotation_failed": True}},
                    )
        except Exception as exc:
            retry = is_retryable(exc)
            _log.log(
                logging.WARNING if retry and isinstance(exc, RotationError) else logging.ERROR,
                "rotation will be retried" if retry else "rotation failed permanently",
                extra={
                    "fields": {
                        **fields,
                        "error": f"{type(exc).__name__}: {exc}"[:400],
                        "retryable": retry,
                        "rotation_failed": not retry,
                        **getattr(exc, "log_fields", {}),
                    }
                },
            )
            return Handled("failed", retry=retry, detail={"error": type(exc).__name__})
        level = logging.INFO
        if handled.outcome in (Outcome.NOT_MANAGED.value, Outcome.TOO_SOON.value):
            level = logging.WARNING
        _log.log(
            level,
            "rotation message handled: %s",
            handled.outcome,
            extra={
                "fields": {
                    **fields,
                    **handled.detail,
                    "latency_ms": round((time.monotonic() - started) * 1000, 1),
                }
            },
        )
        return handled
