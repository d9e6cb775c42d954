"""`webhooks connect`: one request per webhook sets URL and header, the secret's rotations follow
the webhooks it recorded, and Instantly's test delivery proves each (on both store backends).

The receiver here accepts what the webhook secret's `latest` version accepts, as the deployed
receiver does with its Secret Manager volume."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rotation_helpers import World

from instantly_guard.connect import NewWebhook, connect_webhooks
from instantly_guard.errors import BackendError, ConfigError
from instantly_guard.instantly import StaticKey
from instantly_guard.rotation.model import AnnotationKey, Kind, ManagedConfig, Phase
from instantly_guard.secret import Secret
from instantly_guard.webhook.secrets import parse_secret_payload

HOOK_SECRET = "crm-webhook-secret"  # pragma: allowlist secret
HOOK_ADMIN = "webhook-admin-key"
HEADER = "x-webhook-secret"
CAMPAIGN = "0199a1b2-0000-7000-8000-00000000c123"


class Receiver:
    def __init__(self, world: World) -> None:
        self.world = world
        self.accepted = 0
        self.rejected = 0
        self.refuse_all = False
        self.accept_all = False  # a receiver that lost its secret check
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                presented = self.headers.get(HEADER, "")
                ok = (receiver.accept_all or receiver.allows(presented)) and not receiver.refuse_all
                if ok:
                    receiver.accepted += 1
                else:
                    receiver.rejected += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def allows(self, presented: str) -> bool:
        latest = self.world.store.inner.access(HOOK_SECRET, "latest")
        version = parse_secret_payload(latest.reveal())
        return any(
            hmac.compare_digest(presented.encode(), s.reveal().encode())
            for s in version.accepted(self.world.clock())
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def setup(world: World) -> Iterator[tuple[World, Receiver]]:
    """A declared webhook secret with no webhook listed (as Terraform declares it), its first
    version stored, and a managed key holding webhooks:read + update."""
    receiver = Receiver(world)
    world.declare(HOOK_ADMIN, scopes=("webhooks:read", "webhooks:update"))
    world.rotator.handle(world.rotate_event(HOOK_ADMIN))
    world.declare(HOOK_SECRET, kind=Kind.WEBHOOK_SECRET, admin=HOOK_ADMIN)
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    yield world, receiver
    receiver.close()


def _old_webhook(world: World, **fields: Any) -> str:
    """A webhook made by hand before the deployment: another URL, a header typed by a person."""
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        return str(
            client.create_webhook(
                target_hook_url="https://old.acme.example/hook",
                event_type="reply_received",
                name="crm",
                headers={HEADER: "typed-by-hand-long-enough-secret"},
                **fields,
            ).id
        )


def _connect(world: World, url: str, **options: Any) -> Any:
    return connect_webhooks(world.store.inner, world.clients, HOOK_SECRET, url, **options)


def _recorded(world: World) -> tuple[str, ...]:
    return ManagedConfig.parse(world.store.inner.get(HOOK_SECRET)).webhook_ids


def _current(world: World) -> str:
    latest = world.store.inner.access(HOOK_SECRET, "latest")
    return parse_secret_payload(latest.reveal()).current.reveal()


def test_an_existing_webhook_gets_url_and_header_in_one_patch_and_is_recorded(setup: Any) -> None:
    world, receiver = setup
    hook_id = _old_webhook(world)
    before = world.sandbox.calls["PATCH /webhooks/{id}"]

    report = _connect(world, receiver.url, webhook_ids=[hook_id])

    assert report.ok, report.to_json()
    assert world.sandbox.calls["PATCH /webhooks/{id}"] - before == 1
    stored = world.sandbox.state.webhooks[hook_id]
    assert stored.target_hook_url == receiver.url
    assert stored.headers[HEADER] == _current(world)
    assert _recorded(world) == (hook_id,)
    assert report.webhooks[0].test_status == 200
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 0


def test_the_next_rotation_follows_the_connected_webhook(setup: Any) -> None:
    world, receiver = setup
    hook_id = _old_webhook(world)
    _connect(world, receiver.url, webhook_ids=[hook_id])
    first = _current(world)

    world.rotator.handle(world.rotate_event(HOOK_SECRET))

    assert _current(world) != first
    assert world.sandbox.state.webhooks[hook_id].headers[HEADER] == _current(world)
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 0


def test_a_webhook_is_created_with_event_type_campaign_and_header_and_reused_next_time(
    creator: Any,
) -> None:
    world, receiver = creator
    new = NewWebhook(name="crm-replies", event_type="reply_received", campaign=CAMPAIGN)

    first = _connect(world, receiver.url, new=[new], key_secret="admin-key-for-create")
    hook_id = first.webhooks[0].webhook_id
    again = _connect(world, receiver.url, new=[new], key_secret="admin-key-for-create")

    assert first.ok
    assert first.webhooks[0].created
    assert again.webhooks[0].webhook_id == hook_id
    assert not again.webhooks[0].created
    assert world.sandbox.calls["POST /webhooks"] == 1
    stored = world.sandbox.state.webhooks[hook_id]
    assert (stored.event_type, stored.campaign) == ("reply_received", CAMPAIGN)
    assert stored.headers[HEADER] == _current(world)
    assert _recorded(world) == (hook_id,)


@pytest.fixture
def creator(setup: Any) -> Any:
    world, _receiver = setup
    world.declare("admin-key-for-create", scopes=("webhooks:create", "webhooks:read"))
    world.rotator.handle(world.rotate_event("admin-key-for-create"))
    return setup


def test_a_refused_test_delivery_is_reported_not_ok(setup: Any) -> None:
    world, receiver = setup
    hook_id = _old_webhook(world)
    receiver.refuse_all = True

    report = _connect(world, receiver.url, webhook_ids=[hook_id])

    assert not report.ok
    assert report.webhooks[0].test_status == 401
    assert "refused" in report.webhooks[0].detail


def test_connecting_while_a_rotation_runs_is_refused_and_changes_nothing(setup: Any) -> None:
    world, receiver = setup
    hook_id = _old_webhook(world)
    meta = world.store.inner.get(HOOK_SECRET)
    world.store.inner.update(
        HOOK_SECRET,
        aliases=meta.aliases,
        annotations={**meta.annotations, AnnotationKey.PHASE: Phase.CREATING.value},
        etag=meta.etag,
    )

    with pytest.raises(BackendError, match="being rotated") as caught:
        _connect(world, receiver.url, webhook_ids=[hook_id])

    assert caught.value.retryable
    assert world.sandbox.state.webhooks[hook_id].target_hook_url == "https://old.acme.example/hook"
    assert _recorded(world) == ()


def test_an_unknown_webhook_or_an_api_key_secret_is_a_configuration_error(setup: Any) -> None:
    world, receiver = setup
    for unknown in ("nope", "0199a1b2-0000-7000-8000-0000000000ff"):
        with pytest.raises(ConfigError, match=f"no webhook {unknown}"):
            _connect(world, receiver.url, webhook_ids=[unknown])
    with pytest.raises(ConfigError, match="not a webhook secret"):
        connect_webhooks(
            world.store.inner, world.clients, HOOK_ADMIN, receiver.url, webhook_ids=["x"]
        )
    for url in ("http://hooks.example/x", "http://localhost.evil.example/x", "ftp://h/x"):
        with pytest.raises(ConfigError, match="https"):
            _connect(world, url, webhook_ids=["x"])


def test_other_headers_are_kept_and_the_secret_never_appears_in_the_report(setup: Any) -> None:
    world, receiver = setup
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        hook_id = client.create_webhook(
            target_hook_url="https://old.acme.example/hook",
            event_type="reply_received",
            headers={"x-tenant": "acme", HEADER: Secret("typed-by-hand-long-enough-secret")},
        ).id

    report = _connect(world, receiver.url, webhook_ids=[hook_id])

    assert report.ok
    assert world.sandbox.state.webhooks[hook_id].headers["x-tenant"] == "acme"
    assert _current(world) not in str(report.to_json())


@pytest.mark.parametrize("others", [False, True])
def test_masked_header_reads_are_never_written_back(setup: Any, others: bool) -> None:
    """Instantly may answer header values masked (undocumented): with our header alone the PATCH
    carries ours alone; with other headers whose values we cannot see, the webhook is refused
    (not ok, nothing changed) rather than having them replaced by their masks."""
    world, receiver = setup
    extra = {"x-tenant": "acme-tenant-value"} if others else {}
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        hook_id = client.create_webhook(
            target_hook_url="https://old.acme.example/hook",
            event_type="reply_received",
            headers={**extra, HEADER: "typed-by-hand-long-enough-secret"},
        ).id
    world.sandbox.set_webhook_headers(read="masked", echo="masked")

    report = _connect(world, receiver.url, webhook_ids=[hook_id])

    stored = world.sandbox.state.webhooks[hook_id]
    if others:
        assert not report.ok
        assert "masked" in report.webhooks[0].detail
        assert stored.headers == {**extra, HEADER: "typed-by-hand-long-enough-secret"}
    else:
        assert report.ok
        assert stored.headers == {HEADER: _current(world)}


def test_cli_configuration_errors_exit_2(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """No webhook secret declared, a malformed --create, verify without a receiver URL: one
    line on stderr and exit 2."""
    assert cli("webhooks", "connect", "--url", "https://hooks.example/x", "--webhook-id", "y") == 2
    assert "managed webhook secrets: none" in capsys.readouterr().err
    assert cli("webhooks", "connect", "--url", "https://h.example/x", "--create", "crm") == 2
    assert "NAME:EVENT_TYPE" in capsys.readouterr().err
    assert cli("verify", "--format", "json") == 2
    assert "receiver URL is required" in capsys.readouterr().err


def test_cli_connect_prints_json_and_exits_1_when_a_test_delivery_is_refused(
    cli: Any, rotation_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command end to end on the local backend: declare, rotate, connect (refused: no
    receiver listens at the URL, so Instantly's test delivery gets no answer)."""
    admin = rotation_sandbox.keys["admin"]
    assert (
        cli(
            "secrets",
            "declare",
            "hook-admin",
            "--scopes",
            "all:all",
            "--environment",
            "development",
        )
        == 0
    )
    assert cli("secrets", "set", "hook-admin", "--key-id", admin.id, stdin=admin.key) == 0
    assert (
        cli(
            "secrets",
            "declare",
            "hooks",
            "--kind",
            "webhook-secret",
            "--admin-secret",
            "hook-admin",
        )
        == 0
    )
    assert cli("rotate", "hooks") == 0
    capsys.readouterr()
    url = "http://127.0.0.1:9/nobody-listens"
    code = cli(
        "webhooks", "connect", "--url", url, "--create", "crm:reply_received", "--format", "json"
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["webhooks"][0]["created"] is True
    assert data["webhooks"][0]["test_status"] is None
    assert data["recorded_webhook_ids"] == [data["webhooks"][0]["webhook_id"]]
    assert ManagedConfig.parse(cli.store.get("hooks")).webhook_ids == (
        data["webhooks"][0]["webhook_id"],
    )


def test_connecting_a_bootstrapped_secret_then_its_first_rotation_refuses_nothing(
    world: World,
) -> None:
    """Terraform seeds the webhook secret (no `current` alias yet) and the receiver mounts that
    version; `webhooks connect` sends it; the first rotation must keep accepting it for the grace:
    a delivery sent with the seeded header after the new version is stored is still accepted."""
    receiver = Receiver(world)
    try:
        world.declare(HOOK_ADMIN, scopes=("webhooks:read", "webhooks:update"))
        world.rotator.handle(world.rotate_event(HOOK_ADMIN))
        world.declare(HOOK_SECRET, kind=Kind.WEBHOOK_SECRET, admin=HOOK_ADMIN)
        seeded = "seeded-by-terraform-" + "x" * 30
        world.store.inner.add_version(HOOK_SECRET, Secret(seeded))
        hook_id = _old_webhook(world)
        assert _connect(world, receiver.url, webhook_ids=[hook_id]).ok

        world.rotator.handle(world.rotate_event(HOOK_SECRET))

        assert _current(world) != seeded
        assert world.sandbox.state.webhooks[hook_id].headers[HEADER] == _current(world)
        assert receiver.allows(seeded), "the seeded secret was dropped without a grace"
    finally:
        receiver.close()


def test_a_rotation_landing_between_record_and_patch_leaves_the_new_header(setup: Any) -> None:
    """The race the re-read of `latest` is for: a rotation starts once the id is recorded and
    sets its new header before connect's PATCH (carrying the old one) lands. Connect sees the
    new version and sets that header again, so Instantly does not keep sending a secret whose
    grace is running out."""
    world, receiver = setup
    hook_id = _old_webhook(world)
    first = _current(world)

    class RotateBeforeFirstPatch:
        def __init__(self, inner: Any) -> None:
            self.inner, self.done = inner, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def update_webhook(self, webhook_id: str, **fields: Any) -> Any:
            if not self.done:
                self.done = True
                world.rotator.handle(world.rotate_event(HOOK_SECRET))
            return self.inner.update_webhook(webhook_id, **fields)

    report = connect_webhooks(
        world.store.inner,
        lambda provider: RotateBeforeFirstPatch(world.clients(provider)),
        HOOK_SECRET,
        receiver.url,
        webhook_ids=[hook_id],
    )

    assert report.ok
    assert _current(world) != first
    assert world.sandbox.state.webhooks[hook_id].headers[HEADER] == _current(world)
