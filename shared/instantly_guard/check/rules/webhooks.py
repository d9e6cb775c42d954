"""Webhook rules: transport, authentication, disabled deliveries, where events go."""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import urlsplit

from instantly_guard.check.model import Section, Severity, Snapshot, WebhookInfo
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules.base import Failure, Outcome, plural, rule

DISABLED_STATUS = -1


def describe(hook: WebhookInfo) -> str:
    label = f"{hook.name!r} " if hook.name else ""
    return f"webhook {label}(id {hook.id}, event {hook.event_type or 'custom'})"


def subject(hook: WebhookInfo) -> str:
    return f"webhook/{hook.id}"


def target_host(hook: WebhookInfo) -> str:
    """The target's host name, lower-case; empty when the URL has none."""
    try:
        return (urlsplit(hook.target_url).hostname or "").lower()
    except ValueError:
        return ""


_WORD = re.compile(r"[A-Za-z][A-Za-z._-]{0,15}")


def _target(hook: WebhookInfo) -> str:
    """The target without user info, query string or token-like path segments: many receivers
    (Zapier's /hooks/catch/<id>/<token>/, Slack's /services/...) take their secret in the URL.
    Segments that read as words are kept; any other becomes `***`."""
    try:
        parts = urlsplit(hook.target_url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    path = "/".join(s if not s or _WORD.fullmatch(s) else "***" for s in parts.path.split("/"))
    return f"{parts.scheme}://{parts.hostname or ''}{port}{path}"


def _hooks(snapshot: Snapshot) -> tuple[WebhookInfo, ...]:
    return snapshot.webhooks or ()


@rule(
    "webhooks.plain-http",
    title="Webhooks delivering over plain http://",
    severity=Severity.HIGH,
    section=Section.WEBHOOKS,
    fix="Point the webhook at an https:// URL (PATCH /webhooks/{id} target_hook_url).",
    help=(
        "Webhook payloads carry lead data, and the only proof of origin is the custom header. "
        "Over http:// both travel in clear text and can be read or replayed by anyone on the path."
    ),
)
def plain_http(snapshot: Snapshot, policy: Policy) -> Outcome:
    failures = [
        Failure(f"{describe(hook)} delivers to {_target(hook)}", subject=subject(hook))
        for hook in _hooks(snapshot)
        if not hook.target_url.strip().lower().startswith("https://")
    ]
    return Outcome(failures, f"{plural(len(_hooks(snapshot)), 'webhook')}, all https")


@rule(
    "webhooks.no-auth-header",
    title="Webhooks without an authentication header",
    severity=Severity.HIGH,
    section=Section.WEBHOOKS,
    fix=(
        "Declare a webhook secret (`instantly-guard secrets declare NAME --kind webhook-secret "
        "--webhook-id ID --admin-secret ADMIN`, ADMIN holding a key with webhooks:update) so "
        "rotation sets the x-webhook-secret header, and configure the "
        "receiver with INSTANTLY_WEBHOOK_SECRET_FILE."
    ),
    help=(
        "Instantly does not sign deliveries: the custom headers set on the webhook are the only "
        "way a receiver can tell Instantly from anyone who knows the URL."
    ),
)
def no_auth_header(snapshot: Snapshot, policy: Policy) -> Outcome:
    failures = [
        Failure(f"{describe(hook)} sends no custom header", subject=subject(hook))
        for hook in _hooks(snapshot)
        if not hook.header_names
    ]
    return Outcome(failures, f"{plural(len(_hooks(snapshot)), 'webhook')}, all send a header")


@rule(
    "webhooks.duplicate-header",
    title="Webhooks holding one header name twice, in two cases",
    severity=Severity.HIGH,
    section=Section.WEBHOOKS,
    fix=(
        "Keep one spelling of the header (PATCH /webhooks/{id} with the headers object): the "
        "next rotation of a declared webhook secret repairs its own header to one."
    ),
    help=(
        "Header names are case-insensitive: `X-Webhook-Secret` and `x-webhook-secret` are one "
        "header, and the sender keeps one of the two values (which one is not documented). "
        "A stale value may be the one sent, and the receiver refuses genuine deliveries."
    ),
)
def duplicate_header(snapshot: Snapshot, policy: Policy) -> Outcome:
    failures = []
    for hook in _hooks(snapshot):
        spellings: dict[str, list[str]] = {}
        for name in hook.header_names or ():
            spellings.setdefault(name.lower(), []).append(name)
        doubled = sorted(", ".join(sorted(s)) for s in spellings.values() if len(s) > 1)
        if doubled:
            failures.append(
                Failure(f"{describe(hook)} holds {'; '.join(doubled)}", subject=subject(hook))
            )
    return Outcome(failures, f"{plural(len(_hooks(snapshot)), 'webhook')}, no header doubled")


@rule(
    "webhooks.disabled",
    title="Webhooks disabled by Instantly after failed deliveries",
    severity=Severity.HIGH,
    section=Section.WEBHOOKS,
    fix=(
        "Fix the receiver (its logs show why deliveries failed: 401 wrong secret, 503 "
        "misconfiguration or publish failure), then resume the webhook: POST /webhooks/{id}/resume."
    ),
    help=(
        "Instantly switches a webhook off (status -1, audit type 20) after repeated delivery "
        "failures. Until it is resumed, every event is lost."
    ),
)
def disabled(snapshot: Snapshot, policy: Policy) -> Outcome:
    failures = []
    for hook in _hooks(snapshot):
        if hook.status == DISABLED_STATUS:
            since = f" since {hook.error_since:%Y-%m-%d %H:%M} UTC" if hook.error_since else ""
            failures.append(
                Failure(
                    f"{describe(hook)} to {_target(hook)} is disabled{since}: events are lost",
                    subject=subject(hook),
                )
            )
    return Outcome(failures, f"{plural(len(_hooks(snapshot)), 'webhook')}, none disabled")


@rule(
    "webhooks.host-not-allowed",
    title="Webhook targets outside the allowed hosts",
    severity=Severity.MEDIUM,
    section=Section.WEBHOOKS,
    fix=(
        "Delete the webhook if nobody owns its target, or add the host to the policy's "
        "webhook_allowed_hosts after review."
    ),
    help=(
        "Anyone holding webhooks:create or webhooks:update can send the event stream, lead data "
        "included, to a host of their choosing. The allow list names the receivers you run "
        "(exact host names, or patterns such as *-123456789012.europe-west1.run.app: a bare "
        "*.run.app would admit anyone's Cloud Run service)."
    ),
)
def host_not_allowed(snapshot: Snapshot, policy: Policy) -> Outcome:
    allowed = policy.webhook_allowed_hosts
    if not allowed:
        return Outcome(
            skip="not configured: set webhook_allowed_hosts (or --webhook-host) to check targets"
        )
    failures = []
    for hook in _hooks(snapshot):
        host = target_host(hook)
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in allowed):
            failures.append(
                Failure(
                    f"{describe(hook)} delivers to {host or '<no host>'}, not in the allow list",
                    subject=subject(hook),
                )
            )
    return Outcome(
        failures, f"{plural(len(_hooks(snapshot)), 'webhook')}, all to {', '.join(allowed)}"
    )


@rule(
    "webhooks.foreign-to-receiver",
    title="Webhooks that are not ours deliver to our receiver",
    severity=Severity.HIGH,
    section=Section.WEBHOOKS,
    fix=(
        "Find who created the webhook (audit log, webhook created) and delete it "
        "(DELETE /webhooks/{id}); if it is a receiver of yours after all, declare it on the "
        "webhook secret (`instantly-guard secrets declare ... --webhook-id ID`)."
    ),
    help=(
        "GET /webhooks needs no scope, so anyone who can create a webhook sees our receiver's "
        "URL and can aim another webhook at it: event types and campaigns of their choosing, "
        "with lead fields they control. The receiver refuses its deliveries (no secret header) "
        "and the reconciler never republishes them, but the webhook is someone probing the "
        "receiver. Our webhooks are the ids the managed webhook secrets record (and the "
        "policy's managed_webhooks, ids or names); our receiver URLs are their targets."
    ),
)
def foreign_to_receiver(snapshot: Snapshot, policy: Policy) -> Outcome:
    hooks = _hooks(snapshot)
    named = set(policy.managed_webhooks)
    ours = set(snapshot.managed_webhook_ids) | {
        hook.id for hook in hooks if hook.id in named or (hook.name and hook.name in named)
    }
    if not ours:
        return Outcome(
            skip="no managed webhook secret records webhook ids (or the secrets were not read), "
            "and the policy names no managed_webhooks"
        )
    receivers = {hook.target_url for hook in hooks if hook.id in ours}
    failures = [
        Failure(
            f"{describe(hook)} is not one of ours ({', '.join(sorted(ours))}) and delivers to "
            f"our receiver {_target(hook)}",
            subject=subject(hook),
        )
        for hook in hooks
        if hook.id not in ours and hook.target_url in receivers
    ]
    return Outcome(
        failures, f"{plural(len(receivers), 'receiver URL')}, only our webhooks deliver there"
    )


@rule(
    "webhooks.header-readable",
    title="Webhook secret header readable by any key",
    severity=Severity.CRITICAL,
    section=Section.WEBHOOKS,
    fix=(
        "Treat the header value as known to every holder of any key in the workspace, and "
        "narrow that set: delete keys nobody uses and hand out none you do not manage (keys.* "
        "rules). Rotate the webhook secret often (a short rotation_period on the webhook-secret "
        "secret) so a value read today stops working soon; alert on deliveries the receiver "
        "refuses and on test deliveries (POST /webhooks/{id}/test needs no scope either); "
        "where the network allows, restrict the receiver's sources (WEBHOOK_ALLOWED_CIDRS). "
        "Ask Instantly support to mask header values in GET /webhooks, and rerun this check."
    ),
    help=(
        "GET /webhooks needs no scope, so every API key of the workspace lists every webhook. "
        "Whether Instantly masks the custom header values there is undocumented; when it does "
        "not, the header (the receiver's only proof that a delivery comes from Instantly) is "
        "readable by any key, and whoever holds one can forge deliveries the receiver accepts. "
        "The check lists webhooks with its own read-only key: a value it reads in full, any key "
        "reads."
    ),
)
def header_readable(snapshot: Snapshot, policy: Policy) -> Outcome:
    failures = [
        Failure(
            f"{describe(hook)}: this check's read-only key reads the value of "
            f"{', '.join(repr(n) for n in hook.readable_headers)} through GET /webhooks, so any "
            "key in the workspace can forge deliveries the receiver accepts",
            subject=subject(hook),
        )
        for hook in _hooks(snapshot)
        if hook.readable_headers
    ]
    return Outcome(
        failures, f"{plural(len(_hooks(snapshot)), 'webhook')}, header values masked or absent"
    )


RULES = (
    plain_http,
    no_auth_header,
    duplicate_header,
    disabled,
    host_not_allowed,
    foreign_to_receiver,
    header_readable,
)
