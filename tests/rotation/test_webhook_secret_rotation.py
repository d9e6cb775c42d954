"""Rotating a webhook secret: the receiver accepts the new secret before Instantly sends it,
both during the grace, then only the new one.

The receiver here does what the real one does with a Secret Manager volume on `latest`: it
parses the latest version with `instantly_guard.webhook.secrets` on every request."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from rotation_helpers import GRACE, LEASE, Crash, World

from instantly_guard.errors import InstantlyError
from instantly_guard.instantly import StaticKey
from instantly_guard.rotation.errors import RotationError
from instantly_guard.rotation.model import AnnotationKey, Kind, ManagedConfig
from instantly_guard.rotation.results import Outcome
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import VersionState
from instantly_guard.webhook.secrets import parse_secret_payload

HOOK_SECRET = "crm-webhook-secret"
HOOK_ADMIN = "webhook-admin-key"
HEADER = "x-webhook-secret"


class Receiver:
    """A loopback endpoint accepting a delivery only with a secret `latest` allows now."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.accepted = 0
        self.rejected = 0
        self.refuse_all = False  # answer 401 to everything, as a receiver with another secret
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                presented = self.headers.get(HEADER, "")
                status = 200 if receiver.allows(presented) and not receiver.refuse_all else 401
                if status == 200:
                    receiver.accepted += 1
                else:
                    receiver.rejected += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def allows(self, presented: str) -> bool:
        latest = self.world.store.inner.access(HOOK_SECRET, "latest")
        version = parse_secret_payload(latest.reveal())
        return any(
            hmac.compare_digest(presented.encode(), s.reveal().encode())
            for s in version.accepted(self.world.clock())
        )

    def post(self, secret: Secret) -> int:
        return httpx.post(
            self.url, json={"event_type": "x"}, headers={HEADER: secret.reveal()}
        ).status_code

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(world: World) -> Iterator[tuple[World, Receiver, str]]:
    receiver = Receiver(world)
    sb = world.sandbox
    with world.clients(StaticKey(sb.keys["admin"].key)) as client:
        webhook = client.create_webhook(
            target_hook_url=receiver.url, event_type="reply_received", name="crm"
        )
    # The key that may PATCH webhooks is itself managed: minted and rotated by the admin key.
    world.declare(HOOK_ADMIN, scopes=("webhooks:read", "webhooks:update"))
    world.rotator.handle(world.rotate_event(HOOK_ADMIN))
    world.declare(
        HOOK_SECRET, kind=Kind.WEBHOOK_SECRET, admin=HOOK_ADMIN, webhook_ids=(webhook.id,)
    )
    yield world, receiver, webhook.id
    receiver.close()


def _header(world: World, hook_id: str) -> str:
    return str(world.sandbox.state.webhooks[hook_id].headers[HEADER])


def test_first_rotation_provisions_the_secret_and_sets_the_header(hook: Any) -> None:
    world, receiver, hook_id = hook
    assert world.rotator.handle(world.rotate_event(HOOK_SECRET)).outcome is Outcome.ROTATED

    secret = world.store.inner.access(HOOK_SECRET, "current")
    assert len(secret.reveal()) >= 43  # 32 random bytes, URL-safe base64
    assert _header(world, hook_id) == secret.reveal()
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 0


def test_old_secret_is_accepted_during_the_grace_then_not(hook: Any) -> None:
    world, receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    old = world.store.inner.access(HOOK_SECRET, "current")

    world.rotator.handle(world.rotate_event(HOOK_SECRET))

    latest = parse_secret_payload(world.store.inner.access(HOOK_SECRET, "latest").reveal())
    new = latest.current
    assert new != old
    assert latest.previous == old
    assert _header(world, hook_id) == new.reveal()
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.post(old) == 200, "an in-flight delivery with the old secret is refused"

    world.clock.advance(GRACE + timedelta(seconds=1))
    assert receiver.post(old) == 401  # the version's own expiry, before any sweep
    world.rotator.sweep()

    assert world.store.inner.access(HOOK_SECRET, "latest") == new  # a single-secret version
    assert (
        world.aliases(HOOK_SECRET)["current"]
        == world.store.inner.list_versions(HOOK_SECRET)[-1].version
    )
    states = [v.state for v in world.store.inner.list_versions(HOOK_SECRET)]
    assert states == [VersionState.DISABLED, VersionState.DISABLED, VersionState.ENABLED]
    assert receiver.post(old) == 401
    assert receiver.post(new) == 200
    assert world.sandbox.deliver_webhook_event(hook_id) == 200


def test_the_receiver_accepts_the_new_secret_before_instantly_sends_it(hook: Any) -> None:
    world, receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    old = world.store.inner.access(HOOK_SECRET, "current")
    event = world.rotate_event(HOOK_SECRET)
    world.sandbox.faults.fail_next("PATCH /webhooks/{id}", times=3, mode="error_500")

    with pytest.raises(InstantlyError):
        world.rotator.handle(event)

    # Stored first: `latest` already accepts the new secret; Instantly still sends the old one.
    latest = parse_secret_payload(world.store.inner.access(HOOK_SECRET, "latest").reveal())
    assert latest.previous == old
    assert _header(world, hook_id) == old.reveal()
    assert receiver.post(latest.current) == 200
    assert world.sandbox.deliver_webhook_event(hook_id) == 200

    assert world.rotator.handle(event).outcome is Outcome.ROTATED
    assert _header(world, hook_id) == latest.current.reveal()
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 0


def test_revoke_now_drops_the_old_webhook_secret_at_once(hook: Any) -> None:
    world, receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    old = world.store.inner.access(HOOK_SECRET, "current")

    world.rotator.rotate(HOOK_SECRET, world.manual(revoke_now=True))

    assert receiver.post(old) == 401
    assert world.sandbox.deliver_webhook_event(hook_id) == 200


def test_a_bootstrapped_webhook_secret_stays_accepted_through_its_first_rotation(
    hook: Any,
) -> None:
    world, receiver, hook_id = hook
    bootstrap = Secret("bootstrap-secret-from-terraform-0123456789abcdef")
    world.store.inner.add_version(HOOK_SECRET, bootstrap)  # no alias, as Terraform leaves it
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        client.update_webhook(hook_id, headers={HEADER: bootstrap})

    world.rotator.handle(world.rotate_event(HOOK_SECRET))

    latest = parse_secret_payload(world.store.inner.access(HOOK_SECRET, "latest").reveal())
    assert latest.previous == bootstrap
    assert receiver.post(bootstrap) == 200
    assert world.sandbox.deliver_webhook_event(hook_id) == 200


def test_a_sweep_during_a_rotation_leaves_latest_accepting_the_secret_being_rolled_out(
    hook: Any,
) -> None:
    """The settle step after the grace (a single-secret version) must never become `latest`
    while a rotation is rolling a newer secret out: the receiver would refuse it."""
    world, receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    world.rotator.handle(world.rotate_event(HOOK_SECRET))  # queues the first for revocation
    world.clock.advance(GRACE + timedelta(seconds=1))
    # The next rotation dies (lease still held) right after storing its version, before the
    # webhooks are PATCHed: a sweep now finds the revocation due and the rotation in flight.
    world.store.fail("update", at=2, after=True, exc=Crash)
    with pytest.raises(Crash):
        world.rotator.handle(world.rotate_event(HOOK_SECRET))
    rolling_out = parse_secret_payload(world.store.inner.access(HOOK_SECRET, "latest").reveal())

    world.rotator.sweep()

    assert receiver.post(rolling_out.current) == 200, "latest no longer accepts the new secret"
    world.clock.advance(LEASE + timedelta(seconds=1))
    world.rotator.sweep()  # resumes the rotation: the webhooks now send the new secret
    assert _header(world, hook_id) == rolling_out.current.reveal()
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 0


def test_two_rotations_inside_one_grace_keep_every_secret_for_its_full_grace(hook: Any) -> None:
    """S1 -> S2 -> S3 with the second rotation 38 minutes into S1's grace: S1 stays accepted
    until its own grace ends, S2 until *its* grace ends (not S1's: the sweep due for S1 used to
    settle to S3 alone), S3 throughout. The clock is the world's injected one."""
    world, receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    s1 = _current(world)
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    s2 = _current(world)
    s1_grace_ends = world.clock() + GRACE  # within a second: the version is stored just before
    world.clock.advance(timedelta(minutes=37))
    world.rotator.handle(world.rotate_event(HOOK_SECRET))  # 38 minutes later
    s3 = _current(world)
    s2_grace_ends = world.clock() + GRACE
    assert len({s1.reveal(), s2.reveal(), s3.reveal()}) == 3
    assert _header(world, hook_id) == s3.reveal()
    assert [receiver.post(s) for s in (s1, s2, s3)] == [200, 200, 200]

    world.clock.now = s1_grace_ends - timedelta(seconds=5)
    world.rotator.sweep()
    assert [receiver.post(s) for s in (s1, s2, s3)] == [200, 200, 200], "S1 dropped early"

    world.clock.now = s1_grace_ends + timedelta(seconds=5)
    world.rotator.sweep()  # the revocation queued for S1 is due
    assert receiver.post(s1) == 401
    assert receiver.post(s2) == 200, "S2 refused before its grace ended"
    assert receiver.post(s3) == 200

    world.clock.now = s2_grace_ends - timedelta(seconds=5)
    world.rotator.sweep()
    assert receiver.post(s2) == 200, "S2 refused before its grace ended"

    world.clock.now = s2_grace_ends + timedelta(seconds=5)
    world.rotator.sweep()
    assert [receiver.post(s) for s in (s1, s2, s3)] == [401, 401, 200]
    assert world.store.inner.access(HOOK_SECRET, "latest") == s3  # settled to one secret
    assert world.sandbox.deliver_webhook_event(hook_id) == 200


def _current(world: World) -> Secret:
    """The secret Instantly is told to send: `current`'s, whichever form the payload has."""
    return parse_secret_payload(world.store.inner.access(HOOK_SECRET, "current").reveal()).current


HEADER_VARIANTS = [(read, echo) for read in ("raw", "masked") for echo in ("raw", "masked")]


@pytest.mark.parametrize(
    ("read", "echo"), HEADER_VARIANTS, ids=[f"read-{r}-echo-{e}" for r, e in HEADER_VARIANTS]
)
def test_rotation_works_whether_instantly_shows_header_values_or_masks_them(
    hook: Any, read: str, echo: str
) -> None:
    """Instantly may answer webhook header values raw or masked, on GET and in the PATCH echo
    (undocumented): the rotation completes under each, the receiver accepts what Instantly
    really sends (the sandbox's stored headers), and a test delivery is what proves it."""
    world, receiver, hook_id = hook
    world.sandbox.set_webhook_headers(read=read, echo=echo)
    tests_before = world.sandbox.calls["POST /webhooks/{id}/test"]

    assert world.rotator.handle(world.rotate_event(HOOK_SECRET)).outcome is Outcome.ROTATED
    first = _current(world)
    assert world.rotator.handle(world.rotate_event(HOOK_SECRET)).outcome is Outcome.ROTATED
    second = _current(world)

    assert _header(world, hook_id) == second.reveal()  # what Instantly stored, never a mask
    assert world.sandbox.calls["POST /webhooks/{id}/test"] - tests_before == 2
    assert receiver.post(first) == 200  # in its grace
    world.clock.advance(GRACE + timedelta(minutes=5))
    world.rotator.sweep()
    assert receiver.post(first) == 401
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 1  # only the expired secret posted by hand above


@pytest.mark.parametrize("read", ["raw", "masked"])
def test_other_headers_are_never_overwritten_with_masked_text(hook: Any, read: str) -> None:
    world, _, hook_id = hook
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        client.update_webhook(hook_id, headers={"x-crm-tenant": "tenant-0042-abcdef"})
    world.sandbox.set_webhook_headers(read=read, echo="masked")

    if read == "raw":
        assert world.rotator.handle(world.rotate_event(HOOK_SECRET)).outcome is Outcome.ROTATED
        stored = world.sandbox.state.webhooks[hook_id].headers
        assert stored == {"x-crm-tenant": "tenant-0042-abcdef", HEADER: _current(world).reveal()}
        return
    with pytest.raises(RotationError, match="x-crm-tenant") as refused:
        world.rotator.handle(world.rotate_event(HOOK_SECRET))
    assert not refused.value.retryable
    # Nothing was written: the real value is intact, and no masked text reached Instantly.
    assert world.sandbox.state.webhooks[hook_id].headers == {"x-crm-tenant": "tenant-0042-abcdef"}
    assert world.sandbox.calls["PATCH /webhooks/{id}"] == 1  # the arrangement above only


def test_a_refused_test_delivery_keeps_the_rotation_unfinished_until_it_succeeds(
    hook: Any,
) -> None:
    world, receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    world.sandbox.set_webhook_headers(read="masked", echo="masked")
    receiver.refuse_all = True  # Instantly sends something the receiver does not accept
    event = world.rotate_event(HOOK_SECRET)

    with pytest.raises(RotationError, match="refused Instantly's test delivery") as failed:
        world.rotator.handle(event)
    assert failed.value.retryable
    assert world.annotations(HOOK_SECRET).get(AnnotationKey.PHASE) == "stored"

    receiver.refuse_all = False
    assert world.rotator.handle(event).outcome is Outcome.ROTATED
    assert world.sandbox.deliver_webhook_event(hook_id) == 200


def test_a_test_delivery_without_an_answer_does_not_stop_the_rotation(
    hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiver not deployed yet (or down): nothing proves the header wrong."""
    world, receiver, hook_id = hook
    stored = world.sandbox.state.webhooks[hook_id]
    stored.target_hook_url = "http://127.0.0.1:9/unreachable"
    with caplog.at_level(logging.WARNING, logger="instantly_guard"):
        assert world.rotator.handle(world.rotate_event(HOOK_SECRET)).outcome is Outcome.ROTATED
    assert any("not verified" in r.getMessage() for r in caplog.records)
    stored.target_hook_url = receiver.url
    assert world.sandbox.deliver_webhook_event(hook_id) == 200


def _ours(world: World, hook_id: str) -> dict[str, str]:
    stored = world.sandbox.state.webhooks[hook_id].headers or {}
    return {k: v for k, v in stored.items() if k.lower() == HEADER}


def test_a_header_registered_in_another_case_is_replaced_not_duplicated(hook: Any) -> None:
    """Setup scripts register `X-Webhook-Secret`; the rotation's default is `x-webhook-secret`.
    HTTP names are case-insensitive: the rotation must switch that header, not add a second."""
    world, receiver, hook_id = hook
    bootstrap = Secret("bootstrap-secret-from-setup-script-0123456789abcdef")
    world.store.inner.add_version(HOOK_SECRET, bootstrap)
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        client.update_webhook(hook_id, headers={"X-Webhook-Secret": bootstrap})

    assert world.rotator.handle(world.rotate_event(HOOK_SECRET)).outcome is Outcome.ROTATED

    new = _current(world).reveal()
    assert list(_ours(world, hook_id).values()) == [new]
    world.clock.advance(GRACE + timedelta(seconds=1))
    world.rotator.sweep()
    assert world.sandbox.deliver_webhook_event(hook_id) == 200
    assert receiver.rejected == 0


def test_our_header_held_twice_in_two_cases_is_repaired_to_one(hook: Any) -> None:
    """A webhook left with `X-Webhook-Secret: old` and `x-webhook-secret: new` (by an earlier
    case-sensitive rotation) is repaired to one header on the next rotation, even when one of
    the two already holds the current secret."""
    world, _receiver, hook_id = hook
    world.rotator.handle(world.rotate_event(HOOK_SECRET))
    current = _current(world).reveal()
    with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
        client.update_webhook(
            hook_id, headers={"X-WEBHOOK-SECRET": "stale-value-from-setup", HEADER: current}
        )

    world.rotator.handle(world.rotate_event(HOOK_SECRET))

    assert list(_ours(world, hook_id).values()) == [_current(world).reveal()]


def test_a_header_declared_in_capitals_matches_the_lowercase_one_stored(
    world: World, rotation_sandbox: Any
) -> None:
    receiver = Receiver(world)
    try:
        with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
            webhook = client.create_webhook(
                target_hook_url=receiver.url, event_type="reply_received", name="crm"
            )
        world.declare(HOOK_ADMIN, scopes=("webhooks:read", "webhooks:update"))
        world.rotator.handle(world.rotate_event(HOOK_ADMIN))
        labels, notes = ManagedConfig.declare(
            kind=Kind.WEBHOOK_SECRET,
            admin_secret=HOOK_ADMIN,
            webhook_ids=(webhook.id,),
            webhook_header="X-Webhook-Secret",
        )
        world.store.inner.create_secret(HOOK_SECRET, labels=labels, annotations=notes)
        with world.clients(StaticKey(world.sandbox.keys["admin"].key)) as client:
            client.update_webhook(webhook.id, headers={HEADER: "old-lowercase-registration"})
        world.rotator.handle(world.rotate_event(HOOK_SECRET))
        first = _current(world).reveal()
        world.rotator.handle(world.rotate_event(HOOK_SECRET))
        assert list(_ours(world, webhook.id).values()) == [_current(world).reveal()]
        assert first != _current(world).reveal()
    finally:
        receiver.close()
