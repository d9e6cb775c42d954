"""Resuming a webhook Instantly disabled, once our receiver is healthy again.

Instantly switches a webhook off after repeated failed deliveries (`status: -1`, audit entry
20) and sends nothing more until `POST /webhooks/{id}/resume` (audit entry 21). Resuming into a
receiver that is still down only disables it again, so the resume step first probes the receiver.

The probe is an unauthenticated `GET` of the webhook's target URL. It sends no secret: a probe
must never hand the webhook's credentials to a URL just because Instantly's record names it.
What the receiver answers today (`webhook.handler`, checks 1 and 2):

- `503` when it has no usable secret (it would refuse every delivery): unhealthy;
- `405` with `Allow: POST` when it is configured and running: healthy;
- anything else (a proxy's 404 or 5xx, a connection error, a timeout): unhealthy.

So "healthy" means: the receiver is up and holds a usable secret. It cannot tell whether the
secret matches the webhook's header (a secret out of step still fails deliveries); the run's
next reconciliation shows that as new failures, and the alert on `missing` catches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

from instantly_guard.instantly.models import Webhook

_log = logging.getLogger("instantly_guard.reconcile")
DISABLED: Final = -1
PROBE_TIMEOUT: Final = 5.0


class WebhookClient(Protocol):
    def list_webhooks(self, *, limit: int = 100) -> Iterator[Webhook]: ...

    def resume_webhook(self, webhook_id: str) -> Webhook: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    detail: str


def probe_receiver(url: str, *, transport: httpx.BaseTransport | None = None) -> ProbeResult:
    """GET `url` without credentials; healthy only on the receiver's `405 Allow: POST`."""
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT, transport=transport) as client:
            response = client.get(url, follow_redirects=False)
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"no answer: {type(exc).__name__}")
    allow = response.headers.get("allow", "").upper()
    if response.status_code == 405 and "POST" in allow:
        return ProbeResult(True, "405 Allow: POST")
    return ProbeResult(False, f"HTTP {response.status_code}")


@dataclass(frozen=True, slots=True)
class ResumeAction:
    webhook_id: str
    webhook_url: str
    resumed: bool
    probe: str


def resume_disabled(
    client: WebhookClient,
    ours: Iterable[Webhook],
    *,
    probe: Callable[[str], ProbeResult] = probe_receiver,
) -> list[ResumeAction]:
    """Resume each of `ours` (our webhooks, by the ids the deployment manages, as just listed)
    that Instantly disabled, if its receiver answers the probe. A foreign webhook aimed at our
    receiver is never resumed. Each action is logged at WARNING: a person should know."""
    actions = []
    for hook in ours:
        if hook.status != DISABLED:
            continue
        result = probe(hook.target_hook_url)
        # The URL is not logged: some receivers carry a token in it.
        fields = {"webhook_id": hook.id, "probe": result.detail}
        if not result.healthy:
            _log.warning(
                "webhook %s is disabled by Instantly; the receiver is not healthy (%s): "
                "not resumed",
                hook.id,
                result.detail,
                extra={"fields": {**fields, "action": "resume_skipped"}},
            )
            actions.append(ResumeAction(hook.id, hook.target_hook_url, False, result.detail))
            continue
        client.resume_webhook(hook.id)
        _log.warning(
            "webhook %s was disabled by Instantly; the receiver is healthy: resumed",
            hook.id,
            extra={"fields": {**fields, "action": "resumed"}},
        )
        actions.append(ResumeAction(hook.id, hook.target_hook_url, True, result.detail))
    return actions
