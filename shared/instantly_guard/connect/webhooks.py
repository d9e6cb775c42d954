"""Point Instantly's webhooks at the receiver, hand them to the webhook secret's rotation, test them.

`connect_webhooks` is what `instantly-guard webhooks connect` and `make run` do after the
receiver is up. The managed webhook secret becomes the one owner of its webhook list (annotation
`instantly-guard.webhook-ids`): every later rotation reads it and sets the new header on each.

Order, and why no delivery is refused on the way:

1. The header value is the `current` secret of the webhook secret's `latest` version: the
   version the receiver mounts, so the receiver accepts it before Instantly ever sends it (during
   a rotation's grace `latest` accepts the retiring secrets too, and names the new one current).
2. A webhook to create is created with its URL, event type, campaign and header in one
   `POST /webhooks`; an existing one gets URL and header in one `PATCH`: there is no moment where
   Instantly sends our URL without the header, or the header to a receiver that lacks it. Other
   headers on the webhook are repeated only when the read can be trusted (`webhook_headers`).
3. The ids are recorded on the secret with its etag (compare-and-swap): a rotation that starts
   later follows them. A rotation already under way is waited out (refused, exit 3): it read the
   list before our change.
4. `latest` is read again: if a rotation stored a new secret meanwhile, the headers are set again
   to it (the previous one stays accepted for the grace, so nothing was refused in between).
5. Each webhook gets Instantly's test delivery (`POST /webhooks/{id}/test`), which is sent with
   the headers Instantly stored: the receiver must answer 2xx. A webhook Instantly had disabled
   is resumed first.

Nobody types the secret: it is read from the store and sent to Instantly only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from instantly_guard.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from instantly_guard.instantly.models import Webhook, WebhookTestResult
from instantly_guard.rotation import webhook_headers, webhook_secret
from instantly_guard.rotation.admin import ClientFactory, admin_client
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.model import (
    AnnotationKey,
    Kind,
    ManagedConfig,
    Phase,
    RotationState,
)
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import LATEST, SecretNotFoundError, SecretStore

_log = logging.getLogger("instantly_guard.connect")

ATTEMPTS = 3
"""Compare-and-swap attempts for recording the ids, and passes over the headers while a
rotation keeps changing `latest` under us."""


class WebhookApi(Protocol):
    """The Instantly calls connecting makes (`InstantlyClient` has them)."""

    def list_webhooks(self, *, limit: int = 100) -> Iterator[Webhook]: ...
    def get_webhook(self, webhook_id: str) -> Webhook: ...
    def create_webhook(
        self,
        *,
        target_hook_url: str,
        event_type: str | None,
        name: str | None = None,
        campaign: str | None = None,
        headers: Mapping[str, str | Secret] | None = None,
    ) -> Webhook: ...
    def update_webhook(self, webhook_id: str, **fields: Any) -> Webhook: ...
    def resume_webhook(self, webhook_id: str) -> Webhook: ...
    def test_webhook(self, webhook_id: str) -> WebhookTestResult: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class NewWebhook:
    """A webhook to create (or to reuse, when one of this name already targets the receiver)."""

    name: str
    event_type: str | None
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    """What happened to one webhook. `ok`: Instantly's test delivery was accepted."""

    webhook_id: str
    name: str | None
    created: bool
    updated: bool
    resumed: bool
    test_status: int | None
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "name": self.name,
            "created": self.created,
            "updated": self.updated,
            "resumed": self.resumed,
            "test_status": self.test_status,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ConnectReport:
    secret: str
    receiver_url: str
    recorded: tuple[str, ...]
    webhooks: tuple[Connected, ...]

    @property
    def ok(self) -> bool:
        return all(w.ok for w in self.webhooks)

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "receiver_url": self.receiver_url,
            "recorded_webhook_ids": list(self.recorded),
            "webhooks": [w.to_json() for w in self.webhooks],
            "ok": self.ok,
        }


@dataclass(slots=True)
class _Hook:
    webhook: Webhook
    created: bool
    updated: bool = False
    resumed: bool = False
    problem: str | None = None


def connect_webhooks(
    store: SecretStore,
    clients: ClientFactory,
    secret_name: str,
    receiver_url: str,
    *,
    webhook_ids: Sequence[str] = (),
    new: Sequence[NewWebhook] = (),
    key_secret: str | None = None,
) -> ConnectReport:
    """Connect the webhooks `webhook_ids` (existing) and `new` (created when missing) to
    `receiver_url` with the header secret of managed secret `secret_name`, record them on it,
    and test each. The Instantly key is `key_secret`'s (default: the secret's admin secret,
    which holds `webhooks:update`; creating needs `webhooks:create` too).

    Raises ConfigError for a secret that is not a declared webhook secret, has no version, or a
    webhook id Instantly does not know; BackendError (retryable) while a rotation of the secret
    is under way. A webhook whose test delivery is refused is reported, not raised."""
    if not webhook_ids and not new:
        raise ConfigError("name at least one webhook: --webhook-id ID or --create NAME")
    _check_url(receiver_url)
    config = _webhook_config(store, secret_name)
    _refuse_while_rotating(store, secret_name)  # before creating anything
    admin_config = replace(config, admin_secret=key_secret) if key_secret else config
    # The admin client is an InstantlyClient, which has the webhook calls too.
    client = cast(WebhookApi, admin_client(store, clients, admin_config))
    try:
        value, known = _accepted(store, secret_name)
        hooks = [_existing(client, webhook_id) for webhook_id in dict.fromkeys(webhook_ids)]
        hooks += [_created(client, spec, receiver_url, config, value) for spec in new]
        recorded = _record(store, secret_name, [h.webhook.id for h in hooks])
        for _ in range(ATTEMPTS):
            for hook in hooks:
                _point(client, hook, receiver_url, config.webhook_header, value=value, known=known)
            now_value, known = _accepted(store, secret_name)
            if now_value.reveal() == value.reveal():
                break
            # A rotation stored a new secret while we worked: set that one instead.
            value = now_value
        return ConnectReport(
            secret=secret_name,
            receiver_url=receiver_url,
            recorded=recorded,
            webhooks=tuple(_tested(client, hook) for hook in hooks),
        )
    finally:
        client.close()


def _check_url(url: str) -> None:
    """https, or plain http on loopback only (the local stack): the header travels with it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(f"the receiver URL must be https:// (got {url!r})")


def _refuse_while_rotating(store: SecretStore, name: str) -> None:
    state = RotationState.read(store.get(name))
    if state.phase is not Phase.IDLE:
        raise BackendError(
            f"secret {name} is being rotated (phase {state.phase.value}); its rotation read "
            "the webhook list before this change: run the command again in a minute",
            retryable=True,
        )


def _webhook_config(store: SecretStore, name: str) -> ManagedConfig:
    try:
        meta = store.get(name)
    except SecretNotFoundError as exc:
        raise ConfigError(
            f"secret {name} does not exist: declare it (Terraform's webhook secret, or "
            "`instantly-guard secrets declare NAME --kind webhook-secret --admin-secret A`)"
        ) from exc
    if not ManagedConfig.is_managed(meta):
        raise ConfigError(f"secret {name} is not managed by instantly-guard")
    config = ManagedConfig.parse(meta)
    if config.kind is not Kind.WEBHOOK_SECRET:
        raise ConfigError(f"secret {name} is an {config.kind.value} secret, not a webhook secret")
    return config


def _accepted(store: SecretStore, name: str) -> tuple[Secret, set[str]]:
    """The secret to send (the receiver's `latest` version's current one) and every secret that
    version accepts."""
    try:
        payload = store.access(name, LATEST)
    except SecretNotFoundError as exc:
        raise ConfigError(
            f"secret {name} has no version yet: seed it (Terraform's bootstrap_secret_values) "
            f"or give it its first rotation (`instantly-guard rotate {name}`)"
        ) from exc
    try:
        version = webhook_secret.parse(payload)
    except ValueError as exc:
        raise ConfigError(f"secret {name}: its latest version is not a webhook secret") from exc
    known = {version.current.reveal(), *(r.secret.reveal() for r in version.retiring)}
    return version.current, known


def _existing(client: WebhookApi, webhook_id: str) -> _Hook:
    try:
        return _Hook(client.get_webhook(webhook_id), created=False)
    except (NotFoundError, InvalidRequestError) as exc:  # 400: not even an id's format
        raise ConfigError(f"Instantly has no webhook {webhook_id}") from exc


def _created(
    client: WebhookApi, spec: NewWebhook, url: str, config: ManagedConfig, value: Secret
) -> _Hook:
    """Reuse a webhook of this name already targeting `url` (running the command again must not
    make a second one); else create it with URL and header in the one request."""
    for hook in client.list_webhooks():
        if hook.name == spec.name and hook.target_hook_url == url:
            return _Hook(hook, created=False)
    created = client.create_webhook(
        target_hook_url=url,
        event_type=spec.event_type,
        name=spec.name,
        campaign=spec.campaign,
        headers={config.webhook_header: value},
    )
    _log.info("webhook created", extra={"fields": {"webhook_id": created.id, "name": spec.name}})
    return _Hook(created, created=True)


def _record(store: SecretStore, name: str, ids: Sequence[str]) -> tuple[str, ...]:
    """Add `ids` to the secret's webhook list (compare-and-swap on its etag); the list after."""
    for _ in range(ATTEMPTS):
        _refuse_while_rotating(store, name)
        meta = store.get(name)
        recorded = ManagedConfig.parse(meta).webhook_ids
        merged = tuple(dict.fromkeys([*recorded, *ids]))
        if merged == recorded:
            return recorded
        annotations = {**meta.annotations, AnnotationKey.WEBHOOK_IDS: ",".join(merged)}
        try:
            store.update(name, aliases=meta.aliases, annotations=annotations, etag=meta.etag)
        except ConflictError:
            continue
        except ValueError as exc:  # the annotations would exceed Secret Manager's bound
            raise ConfigError(f"secret {name}: {exc}") from exc
        return merged
    raise BackendError(f"secret {name} kept changing while recording its webhooks", retryable=True)


def _point(
    client: WebhookApi,
    hook: _Hook,
    url: str,
    header: str,
    *,
    value: Secret,
    known: set[str],
) -> None:
    """One PATCH with whatever differs of URL and header; resume a disabled webhook after it.
    `hook.webhook` then holds what we wrote (an echo may mask the values)."""
    current = hook.webhook
    fields: dict[str, Any] = {}
    if current.target_hook_url != url:
        fields["target_hook_url"] = url
    read = dict(current.headers or {})
    ours = read.get(header)
    if ours != value.reveal():
        # A webhook made before the deployment holds a secret we never stored (typed by hand):
        # when it does not look masked, it is its real value and the other headers read with it
        # can be repeated. A masked read is never written back (`webhook_headers`).
        trusted = known | ({ours} if ours and not webhook_headers.looks_masked(ours) else set())
        try:
            fields["headers"] = webhook_headers.patched(current.id, read, header, value, trusted)
        except RotationError as exc:
            hook.problem = str(exc)
            return
    if fields:
        client.update_webhook(current.id, **fields)
        written = fields.get("headers", read)
        hook.webhook = current.model_copy(
            update={
                "target_hook_url": url,
                "headers": {
                    k: (v.reveal() if isinstance(v, Secret) else v) for k, v in written.items()
                },
            }
        )
        hook.updated = True
    if current.status == -1 and not hook.resumed:
        client.resume_webhook(current.id)
        hook.webhook = hook.webhook.model_copy(update={"status": 1})
        hook.resumed = True


def _tested(client: WebhookApi, hook: _Hook) -> Connected:
    webhook = hook.webhook

    def done(ok: bool, status: int | None, detail: str) -> Connected:
        return Connected(
            webhook_id=webhook.id,
            name=webhook.name,
            created=hook.created,
            updated=hook.updated,
            resumed=hook.resumed,
            test_status=status,
            ok=ok,
            detail=detail,
        )

    if hook.problem is not None:
        return done(False, None, hook.problem)
    result = client.test_webhook(webhook.id)
    status = result.status_code
    if status is None:
        why = result.error or result.message or "no answer"
        return done(False, None, f"the test delivery got no answer from the receiver ({why})")
    if result.success is False or not 200 <= status < 300:
        return done(
            False,
            status,
            f"the receiver refused Instantly's test delivery (HTTP {status}): is the "
            "receiver's secret this secret's latest version?",
        )
    return done(True, status, "test delivery accepted")
