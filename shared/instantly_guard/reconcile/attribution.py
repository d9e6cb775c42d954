"""Whose delivery a record is: one of our webhooks', or a foreign webhook's aimed at our receiver.

A delivery record names only the target URL (`webhook_url`): the `WebhookEvent` schema has no
webhook id. `GET /webhooks` needs no scope, so anyone who can create a webhook sees our
receiver's URL and can point one at it; its deliveries carry no (or a wrong) secret header and
our receiver refuses them with 401. Those records look like ours in the log. So a record is
attributed by what can be checked (docs/reconcile.md, "Whose delivery is it"):

1. Subscription: only a delivery one of *our* webhooks (the ids the deployment manages,
   `RECONCILE_WEBHOOK_IDS`) targeting that URL would have received is ours: its `event_type`
   must be one the webhook subscribes to, and its `campaign_id` the webhook's campaign when it
   names one. Anything else is `FOREIGN`: never republished.
2. Authentication: a 401/403 from our receiver means the sender had no or a wrong secret. If a
   foreign webhook whose subscription also covers the event targets the same URL, the record
   cannot be told apart from one of its deliveries: `UNATTRIBUTED`, never republished (an ERROR
   and the foreign-webhook alert say why). If only our webhooks could have sent it, it is our
   webhook with a secret out of step (a rotation half done): `OURS_AUTH_REFUSED`, republished
   with the attribute `auth_refused=true`, so consumers can tell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from instantly_guard.instantly.models import Webhook
from instantly_guard.vocabulary import DELIVERED_AS, DELIVERED_EVENT_TYPES, SUBSCRIBE_ALL

AUTH_REFUSED: Final = frozenset({401, 403})


class Verdict(StrEnum):
    OURS = "ours"
    OURS_AUTH_REFUSED = "ours_auth_refused"
    FOREIGN = "foreign"
    UNATTRIBUTED = "unattributed"


def covers(hook: Webhook, event_type: Any, campaign_id: Any) -> bool:
    """Whether `hook` would receive a delivery of `event_type` for `campaign_id`.

    `all_events` receives every type; a webhook without an event type receives custom label
    events (names that are no documented event type); a campaign, when set, must match."""
    if hook.campaign is not None and hook.campaign != campaign_id:
        return False
    if not isinstance(event_type, str):
        return False
    subscribed = hook.event_type
    if subscribed == SUBSCRIBE_ALL:
        return True
    if subscribed is None:
        return event_type not in DELIVERED_EVENT_TYPES
    return DELIVERED_AS.get(subscribed, subscribed) == event_type


@dataclass(frozen=True, slots=True)
class Targets:
    """Webhooks by target URL: ours (managed ids) and foreign ones aimed at the same URLs."""

    ours: Mapping[str, tuple[Webhook, ...]]
    foreign: Mapping[str, tuple[Webhook, ...]]
    unknown_ids: tuple[str, ...]

    @classmethod
    def of(cls, hooks: Iterable[Webhook], our_ids: Iterable[str]) -> Targets:
        ids = tuple(dict.fromkeys(our_ids))
        listed = list(hooks)
        ours: dict[str, list[Webhook]] = {}
        for hook in listed:
            if hook.id in ids:
                ours.setdefault(hook.target_hook_url, []).append(hook)
        foreign: dict[str, list[Webhook]] = {}
        for hook in listed:
            if hook.id not in ids and hook.target_hook_url in ours:
                foreign.setdefault(hook.target_hook_url, []).append(hook)
        seen = {hook.id for hook in listed}
        return cls(
            ours={url: tuple(h) for url, h in ours.items()},
            foreign={url: tuple(h) for url, h in foreign.items()},
            unknown_ids=tuple(i for i in ids if i not in seen),
        )

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self.ours)

    def foreign_hooks(self) -> list[Webhook]:
        return [hook for hooks in self.foreign.values() for hook in hooks]

    def attribute(self, url: str, payload: Mapping[str, Any], status_code: int | None) -> Verdict:
        event_type, campaign = payload.get("event_type"), payload.get("campaign_id")
        if not any(covers(h, event_type, campaign) for h in self.ours.get(url, ())):
            return Verdict.FOREIGN
        if status_code not in AUTH_REFUSED:
            return Verdict.OURS
        if any(covers(h, event_type, campaign) for h in self.foreign.get(url, ())):
            return Verdict.UNATTRIBUTED
        return Verdict.OURS_AUTH_REFUSED
