"""Webhook deliveries: realistic event payloads, POSTed with the webhook's own headers.

Instantly does not sign deliveries; the only proof of origin is the custom `headers` object set on
the webhook, sent with every delivery. Event names differ between subscribing and delivery:
a webhook subscribed to `email_link_clicked` receives `link_clicked`; `auto_reply_received` is
delivered too, and custom lead labels arrive as their raw label text.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from instantly_guard.vocabulary import DELIVERED_AS, SUBSCRIBABLE_EVENT_TYPES
from instantly_sandbox.ids import iso

DELIVERY_USER_AGENT = "axios/0.21.4"
"""Instantly documents no User-Agent for deliveries; captured real ones carry this one.
Receivers must not rely on it."""

_REPLY_EVENTS = frozenset({"reply_received", "auto_reply_received"})
# The lead's own variables, which real deliveries carry at the top level.
_LEAD_VARIABLES = {
    "firstName": "Jordan",
    "lastName": "Lee",
    "companyName": "Prospect Ltd",
    "website": "prospect.example",
    "personalization": "Saw your post about outbound.",
}
_NO_LEAD_EVENTS = frozenset({"campaign_completed", "account_error"})


class DeliveryError(Exception):
    """No HTTP answer from the target (refused, timed out, bad URL), or the webhook is off."""


def delivered_event_type(event_type: str) -> str:
    """The name a delivery carries for a subscription name (`email_link_clicked` -> `link_clicked`)."""
    return DELIVERED_AS.get(event_type, event_type)


def subscribed_to(webhook_event_type: str | None, delivered: str) -> bool:
    """Whether a webhook subscribed to `webhook_event_type` receives an event named `delivered`.

    `all_events` receives everything; null receives custom label events (names that are not
    standard events)."""
    standard = {delivered_event_type(name) for name in SUBSCRIBABLE_EVENT_TYPES}
    standard.add("auto_reply_received")
    if webhook_event_type == "all_events":
        return True
    if webhook_event_type is None:
        return delivered not in standard
    return delivered_event_type(webhook_event_type) == delivered


def build_event_payload(
    event_type: str,
    *,
    workspace_id: str,
    campaign_id: str,
    campaign_name: str = "Q3 Outbound",
    timestamp: datetime | None = None,
    lead_email: str = "jordan.lee@prospect.example",
    email_account: str = "sales1@acme-mail.example",
    step: int = 1,
    variant: int = 1,
    is_first: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A payload shaped like Instantly's for `event_type` (subscription or delivery name).

    Always: `timestamp, event_type, workspace, campaign_id, campaign_name`. Lead events add
    `lead_email, email_account, step, variant, is_first, email_id, email_subject, unibox_url`
    (null, as in real deliveries) and the lead's variables (`firstName`, `companyName`, ...) at
    the top level; replies add `reply_*`; `lead_*` status events carry the `reply_*` fields of
    the reply that set them and no `email_account`/`email_id` (as the real samples in
    tests/webhook/samples/). `extra` adds or overrides keys.
    """
    delivered = delivered_event_type(event_type)
    payload: dict[str, Any] = {
        "timestamp": iso(timestamp or datetime.now(UTC)),
        "event_type": delivered,
        "workspace": workspace_id,
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
    }
    if delivered == "account_error":
        payload["email_account"] = email_account
        payload["error_message"] = "SMTP authentication failed"
    elif delivered not in _NO_LEAD_EVENTS:
        payload.update(
            lead_email=lead_email,
            email_account=email_account,
            step=step,
            variant=variant,
            is_first=is_first,
            email_id="019ffad2-5d00-702c-b737-7642203d0bba",
            email_subject="Quick question about your outbound",
            unibox_url=None,
            **_LEAD_VARIABLES,
        )
    status_event = delivered.startswith("lead_")
    if status_event:
        payload.pop("email_account", None)
        payload.pop("email_id", None)
    if delivered in _REPLY_EVENTS or status_event:
        payload.update(
            reply_subject="Re: Quick question about your outbound",
            reply_text="Sounds interesting, can we talk on Thursday?",
            reply_text_snippet="Sounds interesting, can we talk on Thursday?",
            reply_html="<div>Sounds interesting, can we talk on Thursday?</div>",
        )
    payload.update(extra)
    return payload


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~20 ms): do it once, not per delivery.
    return ssl.create_default_context()


def post_event(
    url: str,
    headers: Mapping[str, str] | None,
    payload: Mapping[str, Any],
    *,
    timeout: float = 5.0,
    user_agent: str = DELIVERY_USER_AGENT,
    transport: httpx.BaseTransport | None = None,
) -> tuple[int, int]:
    """POST `payload` as JSON with the webhook's `headers`: (status, elapsed ms).

    Raises DeliveryError when no response arrives. Redirects are not followed.
    """
    sent = {"content-type": "application/json", "user-agent": user_agent}
    # One value per name, compared case-insensitively, the last spelling winning: what Node's
    # http (under axios) does with a headers object holding `X-Webhook-Secret` and
    # `x-webhook-secret`. Which one the real sender keeps is not documented.
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    started = time.perf_counter()
    try:
        with httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False, verify=_tls_context()
        ) as client:
            response = client.post(url, content=json.dumps(payload).encode(), headers=sent)
    except (httpx.HTTPError, ValueError) as exc:
        raise DeliveryError(f"delivery to {url} failed: {type(exc).__name__}: {exc}") from exc
    return response.status_code, int((time.perf_counter() - started) * 1000)
