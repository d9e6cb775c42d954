"""`instantly-guard verify`: a deployment in order passes every probe, and each part broken on
its own fails the probe that covers it (exit 1), on both backends: the local files, and Secret
Manager and Cloud Storage through the real Google client libraries against their stand-ins.

Lives beside the rotation tests for their `world` (a sandbox workspace, a secret store on each
backend, a rotator with a fixed clock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import secretmanager_v1 as sm
from google.protobuf import duration_pb2
from rotation_helpers import ADMIN, MANAGED, World
from test_webhooks_connect import HEADER, HOOK_ADMIN, HOOK_SECRET, Receiver
from tests.api_variants import params

from instantly_guard.audit.chainhead import ChainHead, GcsChainHead, LocalChainHead
from instantly_guard.audit.checkpoint.base import Checkpoint, RunRecord
from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.audit.sinks.gcp import CloudLoggingSink
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.audit.sinks.sealing import SealingSink
from instantly_guard.connect import connect_webhooks
from instantly_guard.instantly import StaticKey
from instantly_guard.rotation.engine import set_current
from instantly_guard.rotation.model import AnnotationKey, Kind, ManagedConfig
from instantly_guard.secret import Secret
from instantly_guard.secrets.local import LocalSecretStore
from instantly_guard.verify.deployment import build_deployment
from instantly_guard.verify.model import Report, Status
from instantly_guard.verify.probes import run_probes
from standins.gcs import GcsStandIn
from standins.logging_api import LoggingStandIn

PERIOD = timedelta(days=30)
TOPIC = "projects/test-project/topics/instantly-guard-rotation"


def _schedule(world: World, name: str, *, topics: tuple[str, ...] = (TOPIC,)) -> None:
    """The rotation schedule Terraform declares on each managed secret."""
    store = world.store.inner
    if isinstance(store, LocalSecretStore):
        store.set_rotation(name, period=PERIOD, next_time=world.clock() + PERIOD, topics=topics)
        return
    client: sm.SecretManagerServiceClient = store._client  # the real client, on the stand-in
    client.update_secret(
        secret=sm.Secret(
            name=f"projects/test-project/secrets/{name}",
            rotation=sm.Rotation(
                rotation_period=duration_pb2.Duration(seconds=int(PERIOD.total_seconds())),
                next_rotation_time=world.clock() + PERIOD,
            ),
            topics=[sm.Topic(name=t) for t in topics],
        ),
        update_mask={"paths": ["rotation", "topics"]},
    )


class Deployed:
    """A deployment in order: receiver, connected webhook, managed keys, schedules, fresh runs."""

    def __init__(
        self,
        world: World,
        backend: str,
        tmp_path: Path,
        gcs: GcsStandIn,
        logging_api: LoggingStandIn | None = None,
    ) -> None:
        self.world, self.backend = world, backend
        self.receiver = Receiver(world)
        self.gcs = gcs
        self.logging_api = logging_api
        self.state_dir = tmp_path / "state"
        world.declare(HOOK_ADMIN, scopes=("webhooks:read", "webhooks:update"))
        world.rotator.handle(world.rotate_event(HOOK_ADMIN))
        world.declare(HOOK_SECRET, kind=Kind.WEBHOOK_SECRET, admin=HOOK_ADMIN)
        world.rotator.handle(world.rotate_event(HOOK_SECRET))
        world.declare(MANAGED)
        world.rotator.handle(world.rotate_event(MANAGED))
        with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
            self.hook_id = client.create_webhook(
                target_hook_url="https://old.acme.example/hook", event_type="reply_received"
            ).id
        assert connect_webhooks(
            world.store.inner,
            world.clients,
            HOOK_SECRET,
            self.receiver.url,
            webhook_ids=[self.hook_id],
        ).ok
        for name in (ADMIN, HOOK_ADMIN, HOOK_SECRET, MANAGED):
            _schedule(world, name)
        self.deployment = build_deployment(
            self.env(),
            receiver_url=self.receiver.url,
            store=world.store.inner,
            clients=world.clients,
            now=world.clock,
        )
        self.run("export")
        self.run("reconcile")
        self.export_trail("export", "instantly-audit-0001", "instantly-audit-0002")
        self.export_trail("inventory", "inventory-change-0001")

    def env(self) -> dict[str, str]:
        if self.backend == "local":
            return {"GUARD_BACKEND": "local", "GUARD_STATE_DIR": str(self.state_dir)}
        logging_api = getattr(self, "logging_api", None)
        return {
            "GUARD_BACKEND": "gcp",
            "GOOGLE_CLOUD_PROJECT": "test-project",
            "AUDIT_CHECKPOINT_BUCKET": "checkpoints",
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            **({"LOGGING_EMULATOR_HOST": logging_api.target} if logging_api else {}),
        }

    def log(self, log_id: str) -> LogSink:
        """The exported log `log_id` where this backend keeps it."""
        if self.backend == "local":
            return JsonlSink(self.state_dir / "audit" / f"{log_id}.jsonl", log_name=log_id)
        assert self.logging_api is not None
        return CloudLoggingSink(self.logging_api.client(), project="test-project", log_id=log_id)

    def chain_head(self, writer: str) -> ChainHead:
        """Where Terraform (and the local stack) keeps each writer's chain head."""
        folder = "audit" if writer == "export" else "inventory"
        if self.backend == "local":
            return LocalChainHead(self.state_dir / folder / "chain-head.json")
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.storage import Client

        client = Client(
            project="test-project",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.gcs.url},
        )
        name = "audit-export" if writer == "export" else "inventory"
        return GcsChainHead(client, "checkpoints", f"{name}/chain-head.json")

    def export_trail(self, writer: str, *ids: str) -> None:
        """A batch of entries written to the audit log and sealed, as `writer` does."""
        sink = SealingSink(
            self.log("instantly-audit"),
            self.log("instantly-audit-chain"),
            self.chain_head(writer),
            writer=writer,
        )
        sink.write([self.entry(i) for i in ids])

    def entry(self, insert_id: str) -> ExportEntry:
        payload = json.dumps({"id": insert_id, "activity_type": 1})
        return ExportEntry(insert_id, self.world.clock(), "INFO", {"source": "test"}, payload, 600)

    def run(self, which: str, *, outcome: str = "complete", ago: timedelta = timedelta(0)) -> None:
        """Record a finished scheduled run on the export's or reconcile's checkpoint."""
        store = getattr(self.deployment, f"{which}_checkpoint")
        state, generation = store.read()
        finished = self.world.clock() - ago
        record = RunRecord(
            key=f"job@{finished.isoformat()}",
            started_at=finished - timedelta(seconds=5),
            finished_at=finished,
            outcome=outcome,
        )
        state = state or Checkpoint.starting_at(finished - timedelta(days=1))
        store.write(replace(state, runs=(*state.runs, record)), generation)

    def verify(self) -> Report:
        return Report.of(run_probes(self.deployment))

    def failed(self) -> dict[str, list[str]]:
        """probe -> subjects whose result is FAIL."""
        out: dict[str, list[str]] = {}
        for r in self.verify().results:
            if r.status is Status.FAIL:
                out.setdefault(r.probe, []).append(r.subject)
        return out


@pytest.fixture
def gcs() -> Iterator[GcsStandIn]:
    with GcsStandIn() as standin:
        yield standin


@pytest.fixture
def logging_api(backend: str) -> Iterator[LoggingStandIn | None]:
    if backend != "gcp":
        yield None
        return
    with LoggingStandIn() as standin:
        yield standin


@pytest.fixture
def deployed(
    world: World,
    backend: str,
    tmp_path: Path,
    gcs: GcsStandIn,
    logging_api: LoggingStandIn | None,
) -> Iterator[Deployed]:
    d = Deployed(world, backend, tmp_path, gcs, logging_api)
    yield d
    d.receiver.close()


def test_a_deployment_in_order_passes_every_probe(deployed: Deployed) -> None:
    report = deployed.verify()

    assert report.exit_code == 0, json.dumps(report.to_json(), indent=1)
    probes = {r.probe for r in report.results}
    assert probes == {
        "receiver.refuses-forged",
        "webhooks.test-delivery",
        "keys.exact-scopes",
        "secrets.rotation-schedule",
        "runs.audit-export",
        "runs.reconcile",
        "audit.chain",
    }
    assert all(r.status is Status.PASS for r in report.results)
    assert deployed.receiver.accepted >= 2  # connect's and verify's test deliveries


def test_a_receiver_that_accepts_a_forged_delivery_fails(deployed: Deployed) -> None:
    deployed.receiver.accept_all = True
    assert deployed.verify().exit_code == 1
    assert "receiver.refuses-forged" in deployed.failed()


def test_a_receiver_refusing_instantlys_test_delivery_fails(deployed: Deployed) -> None:
    deployed.receiver.refuse_all = True
    assert deployed.failed() == {"webhooks.test-delivery": [f"webhook {deployed.hook_id}"]}


def test_a_webhook_instantly_disabled_or_pointing_elsewhere_fails(deployed: Deployed) -> None:
    deployed.world.sandbox.disable_webhook(deployed.hook_id)
    assert "webhooks.test-delivery" in deployed.failed()
    with deployed.world.clients(StaticKey(deployed.world.sandbox.keys["admin"].key)) as client:
        client.resume_webhook(deployed.hook_id)
        assert "webhooks.test-delivery" not in deployed.failed()
        client.update_webhook(deployed.hook_id, target_hook_url="https://elsewhere.example/h")
    assert "webhooks.test-delivery" in deployed.failed()


def test_no_webhook_connected_fails(deployed: Deployed) -> None:
    store = deployed.world.store.inner
    meta = store.get(HOOK_SECRET)
    notes = {k: v for k, v in meta.annotations.items() if k != AnnotationKey.WEBHOOK_IDS}
    store.update(HOOK_SECRET, aliases=meta.aliases, annotations=notes, etag=meta.etag)
    assert deployed.failed() == {"webhooks.test-delivery": [HOOK_SECRET]}


def test_a_revoked_current_key_fails(deployed: Deployed) -> None:
    key_id = deployed.world.store.inner.get(MANAGED).annotations[AnnotationKey.CURRENT_KEY_ID]
    with deployed.world.clients(StaticKey(deployed.world.sandbox.keys["admin"].key)) as client:
        client.delete_api_key(key_id)
    assert deployed.failed() == {"keys.current-works": [MANAGED]}


def test_a_key_holding_more_scopes_than_declared_fails(deployed: Deployed) -> None:
    wider = deployed.world.sandbox.add_key("wider", ["audit_logs:read", "leads:read"])
    set_current(deployed.world.store.inner, MANAGED, Secret(wider.key), key_id=wider.id)
    assert deployed.failed() == {"keys.exact-scopes": [MANAGED]}


def test_a_key_lacking_a_declared_scope_fails(deployed: Deployed) -> None:
    narrower = deployed.world.sandbox.add_key("narrower", ["campaigns:read"])
    set_current(deployed.world.store.inner, MANAGED, Secret(narrower.key), key_id=narrower.id)
    assert deployed.failed() == {"keys.current-works": [MANAGED]}


def test_a_secret_never_rotated_has_no_current_key_and_fails(deployed: Deployed) -> None:
    deployed.world.declare("never-rotated")
    _schedule(deployed.world, "never-rotated")
    assert deployed.failed() == {"keys.current-works": ["never-rotated"]}


def test_no_schedule_no_topic_or_an_overdue_rotation_fails(deployed: Deployed) -> None:
    deployed.world.declare("no-schedule")
    deployed.world.rotator.handle(deployed.world.rotate_event("no-schedule"))
    assert deployed.failed() == {"secrets.rotation-schedule": ["no-schedule"]}
    _schedule(deployed.world, "no-schedule", topics=())
    assert deployed.failed() == {"secrets.rotation-schedule": ["no-schedule"]}
    _schedule(deployed.world, "no-schedule")
    assert deployed.failed() == {}

    deployed.world.clock.advance(PERIOD + timedelta(days=2))
    deployed.run("export")
    deployed.run("reconcile")
    overdue = deployed.failed()["secrets.rotation-schedule"]
    assert sorted(overdue) == sorted([ADMIN, HOOK_ADMIN, HOOK_SECRET, MANAGED, "no-schedule"])


def test_a_failed_last_rotation_fails(deployed: Deployed) -> None:
    store = deployed.world.store.inner
    meta = store.get(MANAGED)
    notes = {**meta.annotations, AnnotationKey.LAST_ERROR: "KeyTestError: new key was refused"}
    store.update(MANAGED, aliases=meta.aliases, annotations=notes, etag=meta.etag)
    assert deployed.failed() == {"secrets.rotation-schedule": [MANAGED]}


@pytest.mark.parametrize("which", ["export", "reconcile"])
def test_a_failed_or_stale_last_run_fails(deployed: Deployed, which: str) -> None:
    probe = "runs.audit-export" if which == "export" else "runs.reconcile"
    deployed.world.clock.advance(timedelta(minutes=1))
    deployed.run(which, outcome="failed")
    assert list(deployed.failed()) == [probe]
    deployed.world.clock.advance(timedelta(minutes=1))
    deployed.run(which, outcome="time_budget")  # unfinished work resumes next run: a success
    assert deployed.failed() == {}
    deployed.world.clock.advance(timedelta(hours=2))
    deployed.run("reconcile" if which == "export" else "export")  # the other stays fresh
    assert list(deployed.failed()) == [probe]


def test_a_checkpoint_without_runs_fails(
    world: World, backend: str, tmp_path: Path, gcs: Any, logging_api: Any
) -> None:
    d = Deployed.__new__(Deployed)
    d.world, d.backend, d.gcs, d.state_dir = world, backend, gcs, tmp_path / "fresh"
    d.logging_api = logging_api
    deployment = build_deployment(
        d.env(),
        receiver_url="http://127.0.0.1:9/none",
        store=world.store.inner,
        clients=world.clients,
    )
    results = [r for r in run_probes(deployment) if r.probe.startswith("runs.")]
    assert [(r.status, r.detail) for r in results] == [
        (Status.FAIL, "no finished run recorded")
    ] * 2


def test_an_unreachable_receiver_is_not_checkable_rather_than_failed(deployed: Deployed) -> None:
    deployed.receiver.close()
    report = Report.of(
        run_probes(replace(deployed.deployment, receiver_url="http://127.0.0.1:9/closed"))
    )
    forged = [r for r in report.results if r.probe == "receiver.refuses-forged"]
    assert {r.status for r in forged} == {Status.ERROR}
    assert report.exit_code == 1  # the webhook now targets another URL than the one verified


def test_configuration_problems_are_reported_at_once() -> None:
    from instantly_guard.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        build_deployment({"GUARD_BACKEND": "gcp"})
    text = str(caught.value)
    assert "GOOGLE_CLOUD_PROJECT" in text
    assert "receiver URL" in text
    assert "AUDIT_CHECKPOINT_BUCKET" in text


def test_the_secret_never_appears_in_the_report(deployed: Deployed) -> None:
    secret = deployed.world.store.inner.access(HOOK_SECRET, "latest").reveal()
    key = deployed.world.store.inner.access(MANAGED, "current").reveal()
    text = json.dumps(deployed.verify().to_json())
    assert secret not in text
    assert key not in text
    assert ManagedConfig.parse(deployed.world.store.inner.get(HOOK_SECRET)).webhook_header == HEADER


@pytest.mark.parametrize("rotation_sandbox", params(), indirect=True)
def test_a_deployment_in_order_passes_under_every_api_variant(
    local_world: World, tmp_path: Path
) -> None:
    """Each plausible Instantly behaviour (tests/api_variants.py): listed keys with or without
    their key string, scope errors in every wording (a key with no cheap read is proved by its
    scope error), audit entries with null fields, other listing orders and date filters."""
    d = Deployed(local_world, "local", tmp_path, gcs=None)  # type: ignore[arg-type]
    try:
        local_world.declare("no-cheap-read", scopes=("leads:create",))
        local_world.rotator.handle(local_world.rotate_event("no-cheap-read"))
        _schedule(local_world, "no-cheap-read")
        report = d.verify()
        assert report.exit_code == 0, json.dumps(report.to_json(), indent=1)
        assert report.count(Status.PASS) == len(report.results)
    finally:
        d.receiver.close()


def test_an_entry_another_writer_appended_fails_the_audit_chain(deployed: Deployed) -> None:
    """Both writers' sealed entries pass (test above); one more, unsealed, fails with its id."""
    deployed.log("instantly-audit").write([deployed.entry("written-by-someone-else")])

    report = deployed.verify()

    assert report.exit_code == 1
    (chain,) = [r for r in report.results if r.probe == "audit.chain"]
    assert chain.status is Status.FAIL
    assert "written-by-someone-else" in chain.detail
    assert "roles/logging.logWriter" in chain.fix
    assert list(deployed.failed()) == ["audit.chain"]


def test_a_forged_seal_at_the_tip_fails_on_the_stored_head(deployed: Deployed) -> None:
    """A seal chained to the inventory's tip by another writer: its head does not move."""
    forged = SealingSink(
        deployed.log("instantly-audit"),
        deployed.log("instantly-audit-chain"),
        deployed.chain_head("inventory"),
        writer="inventory",
    )
    head = deployed.chain_head("inventory")
    stored, _ = head.read()
    forged.write([deployed.entry("forged-and-sealed")])
    _, generation = head.read()
    head.write(stored, generation)  # the real head object is not the forger's to move

    (chain,) = [r for r in deployed.verify().results if r.probe == "audit.chain"]
    assert chain.status is Status.FAIL
    assert "inventory chain ends at" in chain.detail


def test_nothing_exported_yet_skips_the_audit_chain(
    world: World, backend: str, tmp_path: Path, gcs: Any, logging_api: Any
) -> None:
    d = Deployed.__new__(Deployed)
    d.world, d.backend, d.gcs, d.state_dir = world, backend, gcs, tmp_path / "fresh"
    d.logging_api = logging_api
    deployment = build_deployment(
        d.env(),
        receiver_url="http://127.0.0.1:9/none",
        store=world.store.inner,
        clients=world.clients,
    )
    (chain,) = [r for r in run_probes(deployment) if r.probe == "audit.chain"]
    assert (chain.status, chain.detail) == (Status.SKIP, "nothing exported yet")
