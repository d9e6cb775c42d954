"""Webhooks: pointed at a host outside the allow list, or switched off by Instantly."""

from __future__ import annotations

from collections.abc import Sequence

from instantly_guard.detections.base import detection, single
from instantly_guard.detections.hosts import host_allowed, url_host
from instantly_guard.detections.model import Config, Event, Hit, Severity
from instantly_guard.detections.text import when, who
from instantly_guard.vocabulary import ActivityType

WEBHOOK_CREATED = ActivityType.WEBHOOK_CREATED
WEBHOOK_UPDATED = ActivityType.WEBHOOK_UPDATED
WEBHOOK_DISABLED = ActivityType.WEBHOOK_MARKED_AS_ERROR

# Where a webhook entry's metadata may carry the target (schemaless; the sandbox uses the first).
_URL_FIELDS = ("target_hook_url", "url", "webhook_url")


def target_url(event: Event) -> str | None:
    return next((v for f in _URL_FIELDS if isinstance(v := event.metadata.get(f), str) and v), None)


@detection(
    "audit.webhook-outside-allowlist",
    title="Webhook pointed at a host outside the allow list",
    severity=Severity.HIGH,
    technique="T1567",
    activities=(WEBHOOK_CREATED, WEBHOOK_UPDATED),
    fix=(
        "Check who created or changed the webhook and where it sends; delete it if nobody owns "
        "it, or add the host to the allowed webhook hosts after review."
    ),
    help=(
        "A webhook sends every reply, lead and event of its type to its target: one pointed at "
        "a host nobody reviewed (types 18, 19) is a standing copy of the workspace's data. "
        "Without an allow list (DETECT_WEBHOOK_HOSTS, the policy's webhook_allowed_hosts) the "
        "rule has nothing to compare with and stays silent."
    ),
)
def webhook_outside_allowlist(events: Sequence[Event], config: Config) -> list[Hit]:
    if not config.webhook_allowed_hosts:
        return []
    hits = []
    for event in events:
        url = target_url(event)
        if url is None:
            continue  # an update that did not touch the target (or does not say)
        host = url_host(url)
        if host_allowed(host, config.webhook_allowed_hosts):
            continue
        verb = "created" if event.activity_type == WEBHOOK_CREATED else "pointed"
        hits.append(
            single(
                event,
                f"webhook {event.webhook_id or '?'} {verb} at host {host or '<none>'!r} by "
                f"{who(event)} at {when(event)}, outside the allowed hosts",
                f"webhook/{event.webhook_id or '?'}",
            )
        )
    return hits


@detection(
    "audit.webhook-disabled",
    title="Webhook disabled by Instantly",
    severity=Severity.HIGH,
    activities=(WEBHOOK_DISABLED,),
    fix=(
        "Fix the receiver (its URL, its secret header, its availability), then let the "
        "reconcile function republish the missed events and resume the webhook (or POST "
        "/webhooks/{id}/resume)."
    ),
    help=(
        "Instantly switches a webhook off after repeated failed deliveries (type 20): from then "
        "on its events are not sent at all until it is resumed."
    ),
)
def webhook_disabled(events: Sequence[Event], config: Config) -> list[Hit]:
    hits = []
    for event in events:
        url = target_url(event)
        where = f" (host {url_host(url)!r})" if url else ""
        reason = event.metadata.get("reason")
        why = f": {reason}" if isinstance(reason, str) and reason else ""
        hits.append(
            single(
                event,
                f"webhook {event.webhook_id or '?'}{where} disabled by Instantly at "
                f"{when(event)}{why}; its events are not delivered until it is resumed",
                f"webhook/{event.webhook_id or '?'}",
            )
        )
    return hits


RULES = (webhook_outside_allowlist, webhook_disabled)
