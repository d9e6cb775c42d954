"""Seed the local secret store and the sandbox the way a deployment would be set up.

What a team does once by hand when deploying (store the admin key) and what Terraform declares
(managed secrets), done here against the local backends; then every least-privilege key is minted
by the rotation protocol itself, exactly as in production:

    instantly-admin   the key-minting admin secret: holds the sandbox's `admin` key (all:all,
                      set by hand as a team would), declared with the scopes it holds
    audit-exporter    audit_logs:read, minted by rotation; grace 0s locally, so a rotation
                      revokes the old key at once (deployed default: 1d)
    posture-check     the check's read-only key (profile posture_check), minted by rotation
    webhook-admin     webhooks:read + webhooks:update, minted by rotation: updates the header
    webhook-reconciler  webhook_events:read + webhooks:update (profile
                      webhook_reconciler_resume), minted by rotation: the reconcile function
    webhook-secret    the receiver's shared secret (kind webhook-secret) for the demo webhook:
                      once the receiver is up, its first rotation generates it and
                      `webhooks connect`'s library function (`connect_receiver`) points the
                      webhook at the receiver with its header, records it on the secret and
                      checks it with a test delivery

The receiver reads the webhook secret from a file, as deployed it reads a Secret Manager volume
mounted on `latest`; the local store plays the volume (`LocalSecretStore.mount_latest`), writing
`latest` to that file in the same step as each new version, so a rotation of the webhook secret
reaches the receiver before Instantly's header changes (a poll would lag: the first genuine
delivery after a rotation got a 401).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_guard.rotation.builder import build_rotator
from instantly_guard.rotation.engine import set_current
from instantly_guard.rotation.model import CURRENT, Kind, ManagedConfig
from instantly_guard.rotation.run import Trigger
from instantly_guard.scopes import PROFILES
from instantly_guard.secret import Secret
from instantly_guard.secrets.local import LocalSecretStore

_log = logging.getLogger("instantly_guard.localstack")

STORE_ADMIN: Final = "instantly-admin"
STORE_EXPORTER: Final = "audit-exporter"
STORE_CHECK: Final = "posture-check"
STORE_WEBHOOK_ADMIN: Final = "webhook-admin"
STORE_WEBHOOK: Final = "webhook-secret"
STORE_RECONCILER: Final = "webhook-reconciler"
DEMO_WEBHOOK_NAME: Final = "crm-replies"
WEBHOOK_HEADER: Final = "x-webhook-secret"
WEBHOOK_SECRET_FILE: Final = "webhook-secret"  # noqa: S105 - a file name
CHECK_POLICY_FILE: Final = "check-policy.toml"
ROTATION_PERIOD: Final = timedelta(days=30)
ROTATION_TOPIC: Final = "projects/local/topics/instantly-guard-rotation"


@dataclass(frozen=True, slots=True)
class Provisioned:
    webhook_id: str | None  # the demo webhook, when the workspace has one (else connect creates it)
    secrets: Mapping[str, str]  # name -> what it is, for the guide and stack.json
    webhook_secret_file: Path
    check_policy: Path


def store_for(state_dir: Path) -> LocalSecretStore:
    return LocalSecretStore(state_dir / "secrets")


def current_version_file(state_dir: Path, name: str) -> Path:
    """The file holding the `current` version of secret `name` in the local store (its layout:
    `<name>/versions/<n>`), for a command that takes `..._FILE`. Never prints the value."""
    version = store_for(state_dir).get(name).aliases.get(CURRENT, "1")
    return state_dir / "secrets" / name / "versions" / version


def backend_env(state_dir: Path, api_base: str) -> dict[str, str]:
    """The variables every local function and CLI command shares."""
    return {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_API_BASE": api_base,
    }


def provision(
    state_dir: Path,
    api_base: str,
    admin_key: str,
    admin_key_id: str,
    receiver_url: str,
    *,
    check_policy: Mapping[str, Any] | None = None,
) -> Provisioned:
    """Declare and mint every secret of the stack and point the demo webhook at the receiver."""
    store = store_for(state_dir)
    # Declared with the scopes its key really holds (the sandbox's admin key is all:all), so
    # that `verify` finds exactly the declared scopes; a deployment's is least-privilege.
    _declare(store, STORE_ADMIN, scopes=("all:all",))
    set_current(store, STORE_ADMIN, Secret(admin_key), key_id=admin_key_id)
    _declare(
        store,
        STORE_EXPORTER,
        scopes=PROFILES["audit_exporter"].scope_strings,
        admin_secret=STORE_ADMIN,
        grace="0s",
    )
    _declare(
        store,
        STORE_CHECK,
        scopes=PROFILES["posture_check"].scope_strings,
        admin_secret=STORE_ADMIN,
    )
    _declare(
        store,
        STORE_WEBHOOK_ADMIN,
        scopes=("webhooks:read", "webhooks:update"),
        admin_secret=STORE_ADMIN,
    )

    _declare(
        store,
        STORE_RECONCILER,
        scopes=PROFILES["webhook_reconciler_resume"].scope_strings,
        admin_secret=STORE_ADMIN,
    )

    # Found here, connected once the receiver answers (`connect_receiver`): pointing it at the
    # receiver before the header is set would have Instantly deliver what the receiver refuses.
    with InstantlyClient(
        StaticKey(admin_key), api_base, rate_limiter=RateLimiter(50, 3000), max_retries=2
    ) as client:
        hooks = list(client.list_webhooks())
    hook = next((h for h in hooks if h.name == DEMO_WEBHOOK_NAME), None)
    if hook is None:
        hook = next((h for h in hooks if h.headers and h.status != -1), None)
    # No webhook ids: `webhooks connect` records them, as it does after a deployment.
    _declare(
        store,
        STORE_WEBHOOK,
        kind=Kind.WEBHOOK_SECRET,
        admin_secret=STORE_WEBHOOK_ADMIN,
        webhook_header=WEBHOOK_HEADER,
    )

    rotator = build_rotator(backend_env(state_dir, api_base), store=store)
    for name in (STORE_EXPORTER, STORE_CHECK, STORE_WEBHOOK_ADMIN, STORE_RECONCILER):
        rotator.rotate(name, Trigger.manual(rotator.now()))

    policy_path = state_dir / CHECK_POLICY_FILE
    policy_path.write_text(_toml(check_policy or {}), encoding="utf-8")
    secret_file = state_dir / WEBHOOK_SECRET_FILE
    # Written with every new version, by whichever process adds it (see mount_latest); the
    # first is `connect_receiver`'s, once the receiver is up.
    store.mount_latest(STORE_WEBHOOK, secret_file)
    return Provisioned(
        webhook_id=hook.id if hook is not None else None,
        secrets={
            STORE_ADMIN: "admin key (the sandbox's all:all key, stored by hand)",
            STORE_EXPORTER: "audit export key, audit_logs:read (grace 0s)",
            STORE_CHECK: "posture check key, read-only",
            STORE_WEBHOOK_ADMIN: "webhooks:read + webhooks:update, sets the webhook header",
            STORE_RECONCILER: "reconciler key, webhook_events:read + webhooks:update (resume)",
            STORE_WEBHOOK: f"receiver secret, sent by Instantly as {WEBHOOK_HEADER}",
        },
        webhook_secret_file=secret_file,
        check_policy=policy_path,
    )


def connect_receiver(
    state_dir: Path, api_base: str, receiver_url: str, webhook_id: str | None
) -> str:
    """Once the receiver answers: the webhook secret's first rotation (it generates the secret;
    no webhook is listed yet), then `webhooks connect`, exactly as after a deployment: the demo
    webhook gets URL and header in one PATCH (or is created with them), is recorded on the
    secret and checked by Instantly's test delivery. Returns the webhook's id."""
    from instantly_guard.connect import NewWebhook, connect_webhooks
    from instantly_guard.localstack.processes import StackError
    from instantly_guard.rotation.builder import client_factory
    from instantly_guard.settings import CommonSettings, Reader

    env = backend_env(state_dir, api_base)
    store = store_for(state_dir)
    rotator = build_rotator(env, store=store)
    rotator.rotate(STORE_WEBHOOK, Trigger.manual(rotator.now()))
    report = connect_webhooks(
        store,
        client_factory(CommonSettings.read(Reader(env))),
        STORE_WEBHOOK,
        receiver_url,
        webhook_ids=(webhook_id,) if webhook_id else (),
        new=() if webhook_id else (NewWebhook(DEMO_WEBHOOK_NAME, "all_events"),),
        # Creating needs webhooks:create: the sandbox's admin key (all:all) has it.
        key_secret=None if webhook_id else STORE_ADMIN,
    )
    failed = [w.detail for w in report.webhooks if not w.ok]
    if failed:
        raise StackError(f"connecting the demo webhook failed: {'; '.join(failed)}")
    return report.webhooks[0].webhook_id


def _declare(
    store: LocalSecretStore, name: str, *, kind: Kind = Kind.API_KEY, **options: Any
) -> None:
    """Declare a managed secret as Terraform does: annotations, and a rotation schedule with its
    topic (nothing fires it locally; `verify` reads it, as it reads the deployed one)."""
    labels, annotations = ManagedConfig.declare(kind=kind, **options)
    meta = store.create_secret(name, labels=labels, annotations=annotations)
    ManagedConfig.parse(meta)
    store.set_rotation(
        name,
        period=ROTATION_PERIOD,
        next_time=datetime.now(UTC) + ROTATION_PERIOD,
        topics=(ROTATION_TOPIC,),
    )


def _toml(values: Mapping[str, Any]) -> str:
    """A flat TOML document of strings, integers and string lists (what a Policy holds)."""
    import json

    lines = [
        "# Check policy of the local stack's demo workspace (see instantly_guard.check.policy)"
    ]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
    return "\n".join(lines) + "\n"
