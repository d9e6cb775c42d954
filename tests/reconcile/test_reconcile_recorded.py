"""The reconciler's webhooks are the ones `webhooks connect` records on the webhook secret.

Terraform only seeds the secret's webhook list; after deployment `instantly-guard webhooks
connect` owns it. The reconciler reads that list (RECONCILE_WEBHOOK_SECRET) at every run, so a
webhook connected after it was configured is ours at the next run: its failed deliveries are
republished, never taken for a foreign webhook's. A secret it cannot read fails the run with the
error tree's status (500 for a person to fix, 503 transient), never as "no webhook is ours"."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.standins.secret_manager import SecretManagerStandIn

from instantly_guard.connect import NewWebhook, connect_webhooks
from instantly_guard.errors import ConfigError
from instantly_guard.reconcile.service import build_service, respond
from instantly_guard.reconcile.settings import ReconcileSettings
from instantly_guard.rotation import webhook_secret
from instantly_guard.rotation.builder import client_factory
from instantly_guard.rotation.engine import set_current
from instantly_guard.rotation.model import Kind, ManagedConfig
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretStore
from instantly_guard.secrets.gcp import GcpSecretStore
from instantly_guard.secrets.local import LocalSecretStore
from instantly_guard.settings import CommonSettings, Reader
from instantly_guard.webhook.payload import canonical_json, event_id

from .reconcile_support import (
    HEADER,
    SECRET,
    Clock,
    ReceiverServer,
    add_webhook,
    deliver,
    reconcile_env,
)

HOOK_SECRET = "webhook-secret"  # pragma: allowlist secret
BAD_REFERENCE = "a/b"  # a secret's reference, not a value
FULL_REFERENCE = "projects/p1/secrets/ig-webhook-secret"  # pragma: allowlist secret
HOOK_ADMIN = "webhook-admin"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(tmp_path / "state").start()
    yield server
    server.close()


def _declare_webhook_secret(store: SecretStore, sb: Any, webhook_ids: tuple[str, ...] = ()) -> None:
    """What Terraform declares: an admin key that may create and update webhooks, and the
    webhook secret (seeded with `webhook_ids`) whose first version holds the receiver's secret."""
    key = sb.add_key("webhook admin", ["webhooks:read", "webhooks:create", "webhooks:update"])
    labels, notes = ManagedConfig.declare(
        kind=Kind.API_KEY, scopes=("webhooks:read", "webhooks:create", "webhooks:update")
    )
    store.create_secret(HOOK_ADMIN, labels=labels, annotations=notes)
    set_current(store, HOOK_ADMIN, Secret(key.key), key_id=key.id)
    labels, notes = ManagedConfig.declare(
        kind=Kind.WEBHOOK_SECRET,
        admin_secret=HOOK_ADMIN,
        webhook_header=HEADER,
        webhook_ids=webhook_ids,
    )
    store.create_secret(HOOK_SECRET, labels=labels, annotations=notes)
    store.add_version(HOOK_SECRET, webhook_secret.single(Secret(SECRET)))


def _env(sb: Any, receiver: ReceiverServer, **extra: str) -> dict[str, str]:
    env = reconcile_env(sb, receiver.state_dir, receiver.url, **extra)
    env.pop("RECONCILE_WEBHOOK_IDS")
    return {**env, **extra}


def _connect_new(sb: Any, store: SecretStore, receiver: ReceiverServer) -> str:
    """`instantly-guard webhooks connect --create`, through the connect library."""
    common = CommonSettings.read(
        Reader({"GUARD_BACKEND": "local", "INSTANTLY_API_BASE": sb.base_url})
    )
    report = connect_webhooks(
        store,
        client_factory(common),
        HOOK_SECRET,
        receiver.url,
        new=(NewWebhook("crm-replies", "all_events"),),
    )
    assert report.ok, report.to_json()  # Instantly's test delivery reached the receiver
    (connected,) = report.webhooks
    assert connected.created
    return connected.webhook_id


@pytest.mark.parametrize("with_ids", [False, True], ids=["secret-only", "secret-and-ids"])
def test_a_webhook_connected_after_the_reconciler_is_configured_is_ours(
    sandbox_factory, receiver: ReceiverServer, caplog, with_ids: bool
) -> None:
    sb = sandbox_factory(seed="empty")
    store = LocalSecretStore(receiver.state_dir / "secrets")
    seeded = add_webhook(sb, receiver.url)  # the one Terraform's variable named
    _declare_webhook_secret(store, sb, webhook_ids=(seeded,))
    extra = {"RECONCILE_WEBHOOK_IDS": seeded} if with_ids else {}
    clock = Clock()
    service = build_service(
        _env(sb, receiver, RECONCILE_WEBHOOK_SECRET=HOOK_SECRET, **extra), clock=clock
    )
    try:
        first = service.run("job@1")
        assert (first.outcome, first.foreign_webhooks) == ("complete", 0)

        new = _connect_new(sb, store, receiver)
        receiver.stop()
        payloads = deliver(sb, new, 3, lead="after-connect")
        receiver.start()
        clock.advance(timedelta(minutes=10))
        with caplog.at_level(logging.WARNING, logger="instantly_guard.reconcile"):
            second = service.run("job@2")
    finally:
        service.close()

    expected = sorted(event_id(canonical_json(p)) for p in payloads)
    assert second.error is None, second.error
    assert (second.foreign_webhooks, second.foreign, second.unknown_webhooks) == (0, 0, 0)
    assert (second.missing, second.republished) == (3, 3)
    reconciled = [m for m in receiver.outbox() if m.attributes.get("reconciled") == "true"]
    assert sorted(m.attributes["event_id"] for m in reconciled) == expected
    assert not any(
        getattr(r, "fields", {}).get("action") == "foreign_webhook" for r in caplog.records
    )


def test_the_ids_variable_alone_still_works_and_is_added_to_the_secrets_list(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty")
    store = LocalSecretStore(receiver.state_dir / "secrets")
    recorded = add_webhook(sb, receiver.url)
    extra_hook = add_webhook(sb, receiver.url)
    _declare_webhook_secret(store, sb, webhook_ids=(recorded,))
    receiver.stop()
    payloads = deliver(sb, recorded, 1, lead="a") + deliver(sb, extra_hook, 1, lead="b")
    receiver.start()
    env = _env(sb, receiver, RECONCILE_WEBHOOK_SECRET=HOOK_SECRET, RECONCILE_WEBHOOK_IDS=extra_hook)
    service = build_service(env)
    try:
        report = service.run("job@1")
    finally:
        service.close()

    assert (report.foreign_webhooks, report.republished) == (0, 2)
    assert sorted(receiver.outbox_ids()) == sorted(event_id(canonical_json(p)) for p in payloads)


# -- configuration ----------------------------------------------------------------------------


def test_one_of_the_secret_or_the_ids_is_required(sandbox_factory, receiver) -> None:  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty")
    with pytest.raises(ConfigError, match=r"RECONCILE_WEBHOOK_SECRET .* or RECONCILE_WEBHOOK_IDS"):
        ReconcileSettings.from_env(_env(sb, receiver))
    with pytest.raises(ConfigError, match="RECONCILE_WEBHOOK_SECRET must be projects/"):
        ReconcileSettings.from_env(_env(sb, receiver, RECONCILE_WEBHOOK_SECRET=BAD_REFERENCE))
    settings = ReconcileSettings.from_env(
        _env(sb, receiver, RECONCILE_WEBHOOK_SECRET=FULL_REFERENCE)
    )
    assert settings.webhook_secret is not None
    assert (settings.webhook_secret.name, settings.webhook_secret.project) == (
        "ig-webhook-secret",
        "p1",
    )


def _failed_run(env: dict[str, str], **options: Any) -> Any:
    service = build_service(env, **options)
    try:
        report = service.run("job@1")
    finally:
        service.close()
    assert report.outcome == "failed"
    return report


def test_a_missing_secret_fails_the_run_for_a_person_to_fix(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty")
    add_webhook(sb, receiver.url)
    report = _failed_run(_env(sb, receiver, RECONCILE_WEBHOOK_SECRET="no-such-secret"))

    response = respond(report)
    assert response.status == 500
    assert response.body["error"]["kind"] == "config"
    assert "no-such-secret does not exist" in response.body["error"]["message"]


def test_a_secret_that_is_not_the_webhook_secret_fails_the_run(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty")
    store = LocalSecretStore(receiver.state_dir / "secrets")
    _declare_webhook_secret(store, sb)
    report = _failed_run(_env(sb, receiver, RECONCILE_WEBHOOK_SECRET=HOOK_ADMIN))

    assert isinstance(report.error, ConfigError)
    assert "not the webhook secret" in str(report.error)
    assert respond(report).status == 500


def test_no_recorded_webhook_and_no_ids_is_an_error_not_an_empty_run(
    sandbox_factory, receiver: ReceiverServer
) -> None:
    sb = sandbox_factory(seed="empty")
    store = LocalSecretStore(receiver.state_dir / "secrets")
    _declare_webhook_secret(store, sb)  # deployed, `webhooks connect` not run yet
    report = _failed_run(_env(sb, receiver, RECONCILE_WEBHOOK_SECRET=HOOK_SECRET))

    assert isinstance(report.error, ConfigError)
    assert "webhooks connect" in str(report.error)
    assert respond(report).status == 500


# -- Secret Manager: the deployed shape ---------------------------------------------------------


@pytest.fixture
def secret_manager() -> Iterator[SecretManagerStandIn]:
    with SecretManagerStandIn() as standin:
        yield standin


def _gcp_store(standin: SecretManagerStandIn) -> GcpSecretStore:
    return GcpSecretStore("demo-project", client=standin.client(), timeout=5.0)


@pytest.mark.gcp
def test_secret_manager_metadata_is_read_at_every_run_never_a_value(
    sandbox_factory, receiver: ReceiverServer, secret_manager: SecretManagerStandIn
) -> None:
    sb = sandbox_factory(seed="empty")
    store = _gcp_store(secret_manager)
    seeded = add_webhook(sb, receiver.url)
    _declare_webhook_secret(store, sb, webhook_ids=(seeded,))
    secret_manager.reset_calls()
    env = _env(
        sb, receiver, RECONCILE_WEBHOOK_SECRET=f"projects/demo-project/secrets/{HOOK_SECRET}"
    )
    service = build_service(env, secret_store=store)
    try:
        reports = [service.run("job@1"), service.run("job@2")]
    finally:
        service.close()

    assert [r.error for r in reports] == [None, None]
    assert secret_manager.calls["GetSecret"] == 2  # one read per run: a new webhook shows up
    assert secret_manager.calls["AccessSecretVersion"] == 0  # the value is never read


FAULTS = {
    "unavailable": (grpc.StatusCode.UNAVAILABLE, 503),  # transient: Scheduler tries again
    "rejected": (grpc.StatusCode.PERMISSION_DENIED, 500),  # the grant is missing: a person
}


@pytest.mark.gcp
@pytest.mark.parametrize("kind", list(FAULTS))
def test_an_unreadable_secret_fails_the_run_by_the_error_tree(
    sandbox_factory, receiver: ReceiverServer, secret_manager: SecretManagerStandIn, kind: str
) -> None:
    code, status = FAULTS[kind]
    sb = sandbox_factory(seed="empty")
    store = _gcp_store(secret_manager)
    _declare_webhook_secret(store, sb, webhook_ids=(add_webhook(sb, receiver.url),))
    secret_manager.fail_next("GetSecret", code, times=10)
    env = _env(sb, receiver, RECONCILE_WEBHOOK_SECRET=HOOK_SECRET)

    report = _failed_run(env, secret_store=store)

    response = respond(report)
    assert (response.status, response.body["error"]["kind"]) == (status, kind)
    # Nothing was read as if no webhook were ours: the run stopped before Instantly.
    assert sb.calls["GET /webhooks"] == sb.calls["GET /webhook-events"] == 0
