"""The Instantly side of a rotation: the calls it makes (`InstantlyApi`) and the admin client.

The admin client mints, tests around and revokes keys with the key in the managed secret's admin
secret (`instantly-guard.admin-secret`, by default the secret itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import Any, Protocol

from instantly_guard.errors import NotFoundError
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.instantly.models import ApiKey, CreatedApiKey, Webhook, WebhookTestResult
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.model import CURRENT, ManagedConfig
from instantly_guard.secrets.base import (
    LATEST,
    SecretNotFoundError,
    SecretStore,
    VersionUnavailableError,
)
from instantly_guard.secrets.provider import secret_key_provider


class InstantlyApi(Protocol):
    """What rotation calls on Instantly (`InstantlyClient` satisfies it)."""

    def list_api_keys(self, *, limit: int = 100) -> Iterator[ApiKey]: ...
    def create_api_key(self, name: str, scopes: Sequence[str]) -> CreatedApiKey: ...
    def delete_api_key(self, key_id: str) -> ApiKey: ...
    def get_webhook(self, webhook_id: str) -> Webhook: ...
    def update_webhook(self, webhook_id: str, **fields: Any) -> Webhook: ...
    def test_webhook(self, webhook_id: str) -> WebhookTestResult: ...
    def probe(self, path: str = "/campaigns", *, limit: int | None = 1) -> None: ...
    def close(self) -> None: ...


ClientFactory = Callable[[KeyProvider], InstantlyApi]
"""Builds an Instantly client around a key provider (base URL, limiter, timeouts bound in)."""


def admin_client(store: SecretStore, clients: ClientFactory, config: ManagedConfig) -> InstantlyApi:
    """A client on the admin key of `config` (its admin secret's `current`), read now: a missing
    admin key fails before any change, with a permanent RotationError. The caller closes it."""
    try:
        alias = CURRENT
        if not config.self_admin and CURRENT not in store.get(config.admin_secret).aliases:
            # Bootstrapped outside the protocol (Terraform) and not yet rotated: its newest
            # version is the admin key until its own first rotation adopts it as `current`.
            alias = LATEST
        provider = secret_key_provider(store, config.admin_secret, alias=alias, ttl=30.0)
        provider()  # read (and cache) it now: a missing admin key fails before any change
    except (SecretNotFoundError, VersionUnavailableError) as exc:
        raise RotationError(
            f"admin secret {config.admin_secret} has no usable `current` key: store one "
            f"with `instantly-guard secrets set {config.admin_secret}`",
            retryable=False,
        ) from exc
    return clients(provider)


def delete_key(admin: InstantlyApi, key_id: str) -> None:
    """Delete an Instantly key; one already gone counts as deleted."""
    with suppress(NotFoundError):
        admin.delete_api_key(key_id)
