"""Which SECRET_ROTATE events may act: checked before anything is read or minted.

Anyone who can publish to the rotation topic can forge an event, so an event is admitted only if
everything a forger controls agrees with what they cannot control:

- the project in `secretId` is ours: the deployment's project id or its number (Secret Manager
  may write either; `ROTATION_PROJECT_NUMBER` names the number). With no project configured (the
  local backend) there is nothing to compare and the check is skipped;
- its `timestamp` is near `publishTime` (set by Pub/Sub, not by the publisher) and neither in the
  future nor older than a delivered message can be (`max_age`, the subscription's retention).
  Secret Manager publishes when a rotation is due, so a genuine event is never far from either;
  a far one (`9999-01-01`) would otherwise be recorded as the last rotation and turn every genuine
  event into a duplicate.

A refused event is acknowledged (redelivering it cannot make it acceptable) and logged at ERROR
with `rotation_event_refused: true`, the field an alert matches.

The third check, pacing, needs the secret's state and lives where the state is changed
(`lease.claim`): an event-driven rotation needs its event time at least `min_interval` after the
last rotation's (`min_interval` below), so a burst of events mints one key per secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from instantly_guard.rotation.events import RotateRequest
from instantly_guard.secrets.base import SecretMetadata

DEFAULT_MAX_SKEW: Final = timedelta(minutes=10)
DEFAULT_MAX_AGE: Final = timedelta(days=7)  # Pub/Sub keeps an unacknowledged message 7 days
DEFAULT_MIN_INTERVAL: Final = timedelta(hours=1)  # Secret Manager's shortest rotation period


@dataclass(frozen=True, slots=True)
class EventPolicy:
    """What a SECRET_ROTATE must satisfy to act (module docstring)."""

    projects: frozenset[str] = frozenset()
    max_skew: timedelta = DEFAULT_MAX_SKEW
    max_age: timedelta = DEFAULT_MAX_AGE

    @classmethod
    def for_project(
        cls, project: str | None, number: str | None, **options: timedelta
    ) -> EventPolicy:
        return cls(projects=frozenset(p for p in (project, number) if p), **options)

    def refusal(self, request: RotateRequest, now: datetime) -> str | None:
        """Why `request` may not act, or None when it may."""
        if self.projects and request.project not in self.projects:
            return f"secretId names project {request.project!r}, not this deployment's"
        when = request.event_time
        if request.publish_time is not None and abs(when - request.publish_time) > self.max_skew:
            return (
                f"timestamp {when.isoformat()} is more than {self.max_skew} from the message's "
                f"publishTime {request.publish_time.isoformat()}"
            )
        if when > now + self.max_skew:
            return f"timestamp {when.isoformat()} is in the future"
        if when < now - self.max_age - self.max_skew:
            return f"timestamp {when.isoformat()} is older than a message can be delivered"
        return None


def min_interval(
    meta: SecretMetadata, default: timedelta, fixed: timedelta | None = None
) -> timedelta:
    """How long after the last event-driven rotation of this secret the next may start.

    `fixed` when the deployment sets one (ROTATION_MIN_INTERVAL: an operator's choice, the local
    stack's 0s). Else half the secret's rotation period when it has one: a genuine SECRET_ROTATE
    comes a period after the previous one, and half leaves room for a late delivery of one and an
    early next. `default` when the store does not say (a secret with no schedule).
    """
    if fixed is not None:
        return fixed
    if meta.rotation_period is not None and meta.rotation_period > timedelta(0):
        return meta.rotation_period / 2
    return default
