"""Which webhooks are ours: the list `webhooks connect` records on the managed webhook secret.

`instantly-guard webhooks connect` owns that list (annotation `instantly-guard.webhook-ids`;
Terraform only seeds it) and every rotation of the webhook secret reads it. The reconciler reads
the same annotation with the same parser (`ManagedConfig.parse`) at every run, so a webhook
connected after deployment is ours from the next run on, without a redeploy: the two can never
disagree about whose deliveries are republished.

Only the secret's metadata is read (`SecretStore.get`, Secret Manager's `secrets.get`, which
roles/secretmanager.viewer grants), never a version: the reconciler cannot learn the webhook
secret's value.

Errors: `ConfigError` when the secret does not exist, is not a managed webhook secret or its
declaration does not parse (a person must fix it); the store's `BackendError` otherwise, with
its `retryable` (Secret Manager unavailable: transient; permission denied: permanent).
"""

from __future__ import annotations

from instantly_guard.errors import ConfigError
from instantly_guard.rotation.model import Kind, ManagedConfig
from instantly_guard.secrets.base import SecretNotFoundError, SecretStore


class RecordedWebhooks:
    """Callable: the webhook ids recorded on `secret` now (possibly none)."""

    def __init__(self, store: SecretStore, secret: str) -> None:
        self._store = store
        self.secret = secret

    def __call__(self) -> tuple[str, ...]:
        try:
            meta = self._store.get(self.secret)
        except SecretNotFoundError as exc:
            raise ConfigError(
                f"RECONCILE_WEBHOOK_SECRET: secret {self.secret} does not exist (it must name "
                "the managed webhook secret, whose webhook list `webhooks connect` keeps)"
            ) from exc
        if not ManagedConfig.is_managed(meta):
            raise ConfigError(
                f"RECONCILE_WEBHOOK_SECRET: secret {self.secret} is not managed by instantly-guard"
            )
        config = ManagedConfig.parse(meta)
        if config.kind is not Kind.WEBHOOK_SECRET:
            raise ConfigError(
                f"RECONCILE_WEBHOOK_SECRET: secret {self.secret} is an {config.kind.value} "
                "secret, not the webhook secret"
            )
        return config.webhook_ids
