"""Which Instantly key ids belong to instantly-guard's managed rotations, read from the secrets.

Every managed secret records the Instantly id of its key (`current-key-id`, `pending-key-id`,
and the old keys in `revocations`). With those, the check recognises a key creation or
deletion made by a rotation even when the minting key is a hand-made admin key whose name says
nothing (`audit.key-change-outside-rotation`). Read only when the check can reach the store
(GUARD_BACKEND and its settings); otherwise the rule falls back to key names and the policy's
`rotation_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

from instantly_guard.errors import GuardError
from instantly_guard.rotation.model import MANAGED_LABELS, Kind, ManagedConfig, RotationState
from instantly_guard.secrets.base import SecretStore

_ADMIN_ANNOTATION = "instantly-guard.admin-secret"


@dataclass(frozen=True, slots=True)
class ManagedKeys:
    """`admin_ids`: keys managed secrets mint and revoke with; `key_ids`: every key a managed
    secret holds or is about to revoke."""

    admin_ids: frozenset[str]
    key_ids: frozenset[str]
    webhook_ids: frozenset[str] = frozenset()
    """The webhooks managed webhook secrets declare (`webhooks.foreign-to-receiver`)."""


def read_managed_keys(store: SecretStore) -> ManagedKeys:
    """The key ids recorded by every managed secret in `store`. Raises GuardError when the
    store cannot be listed."""
    held: dict[str, set[str]] = {}
    admins: set[str] = set()
    hooks: set[str] = set()
    for meta in store.list_secrets(MANAGED_LABELS):
        try:
            config = ManagedConfig.parse(meta)
        except GuardError:
            config = None  # malformed declaration: `secrets show` reports it
        if config is not None and config.kind is Kind.WEBHOOK_SECRET:
            hooks.update(config.webhook_ids)
        try:
            state = RotationState.read(meta)
        except GuardError:
            continue  # malformed state: `secrets show` reports it; the check uses the rest
        ids = {i for i in (state.current_key_id, state.pending_key_id) if i}
        ids |= {r.key_id for r in state.revocations if r.key_id}
        held[meta.name] = ids
        admins.add(meta.annotations.get(_ADMIN_ANNOTATION, "").strip() or meta.name)
    admin_ids = {key for name in admins for key in held.get(name, ())}
    return ManagedKeys(
        admin_ids=frozenset(admin_ids),
        key_ids=frozenset(key for ids in held.values() for key in ids),
        webhook_ids=frozenset(hooks),
    )
