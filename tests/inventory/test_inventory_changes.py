"""Each change kind of the vocabulary, made the way a person would (over Instantly's API, or in
the app where the API offers no write), is one entry in the exported audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instantly_guard.inventory.records import header_fingerprint
from instantly_sandbox import Sandbox
from instantly_sandbox.seed import BLOCKED, HOOK_GOOD, MEMBER_OUTSIDE, MEMBER_PENDING

from .inventory_support import Clock, Person, changes, inventory_entries, log_path, service


@pytest.fixture
def run(sandbox: Sandbox, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the inventory (one service, a clock advanced 15 minutes per run)."""
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)

    def once() -> dict:
        clock.advance()
        report = svc.run()
        assert report.error is None, report.error
        return report.to_json()

    yield once
    svc.close()


def test_first_run_writes_one_baseline_entry_with_counts(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    report = run()

    assert report["outcome"] == "baseline"
    (entry,) = inventory_entries(tmp_path)
    payload = entry["jsonPayload"]
    assert payload["change"] == "inventory.baseline"
    assert entry["labels"] == {"source": "inventory", "change": "inventory.baseline"}
    assert payload["before"] is None
    assert payload["after"] == {
        "member": len(sandbox.state.members),
        "key": len(sandbox.state.api_keys),
        "webhook": len(sandbox.state.webhooks),
        "blocklist": len(sandbox.state.block_list),
        "workspace": 1,
    }
    assert payload["object"]["type"] == "workspace"
    assert payload["previous_snapshot_at"] is None


def test_a_run_that_finds_no_change_writes_nothing(tmp_path: Path, run) -> None:
    run()
    before = log_path(tmp_path).read_bytes()

    report = run()

    assert report["outcome"] == "unchanged"
    assert report["written"] == 0
    assert log_path(tmp_path).read_bytes() == before


def test_member_invited_joined_promoted_and_removed(sandbox: Sandbox, tmp_path: Path, run) -> None:
    run()
    with Person(sandbox) as person:
        invited = person.call(
            "POST", "/workspace-members", json={"email": "nina@acme.example", "role": "view"}
        )
        run()
        with sandbox.state.lock:  # the person accepts the invitation in the app
            sandbox.state.members[invited["id"]].accepted = True
        run()
        person.call("PATCH", f"/workspace-members/{invited['id']}", json={"role": "admin"})
        run()
        person.call("DELETE", f"/workspace-members/{person.member_id(MEMBER_OUTSIDE)}")
        run()

    assert changes(tmp_path) == [
        ("member.invited", "nina@acme.example"),
        ("member.joined", "nina@acme.example"),
        ("member.role_changed", "nina@acme.example"),
        ("member.removed", MEMBER_OUTSIDE),
    ]
    by_change = {e["jsonPayload"]["change"]: e for e in inventory_entries(tmp_path)}
    promoted = by_change["member.role_changed"]
    assert promoted["severity"] == "WARNING"
    assert promoted["jsonPayload"]["before"]["role"] == "view"
    assert promoted["jsonPayload"]["after"] == {
        "email": "nina@acme.example",
        "role": "admin",
        "permissions": None,
        "accepted": True,
    }
    assert by_change["member.invited"]["jsonPayload"]["before"] is None
    assert by_change["member.removed"]["jsonPayload"]["after"] is None
    assert by_change["member.removed"]["severity"] == "NOTICE"


def test_a_demotion_is_a_role_change_of_normal_severity(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    run()
    with Person(sandbox) as person:
        person.call(
            "PATCH", f"/workspace-members/{person.member_id(MEMBER_PENDING)}", json={"role": "view"}
        )
    run()

    (entry,) = [
        e for e in inventory_entries(tmp_path) if e["labels"]["change"] != "inventory.baseline"
    ]
    assert entry["labels"]["change"] == "member.role_changed"
    assert entry["severity"] == "NOTICE"


def test_permissions_granted_in_the_app_are_recorded(sandbox: Sandbox, tmp_path: Path, run) -> None:
    run()
    with sandbox.state.lock:  # the API cannot set permissions: a person does it in the app
        member = next(iter(sandbox.state.members.values()))
        member.permissions = ["organization.billing", "campaigns.view"]
    run()

    (entry,) = [
        e for e in inventory_entries(tmp_path) if e["labels"]["change"] != "inventory.baseline"
    ]
    assert entry["labels"]["change"] == "member.permissions_changed"
    assert entry["jsonPayload"]["after"]["permissions"] == [
        "campaigns.view",
        "organization.billing",
    ]


def test_keys_created_and_deleted_never_carry_a_key_value(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    run()
    with Person(sandbox) as person:
        created = person.call(
            "POST", "/api-keys", json={"name": "zapier-2", "scopes": ["leads:read"]}
        )
        run()
        person.call("DELETE", f"/api-keys/{created['id']}")
        run()

    assert changes(tmp_path) == [("key.created", "zapier-2"), ("key.deleted", "zapier-2")]
    entries = inventory_entries(tmp_path)
    assert {e["severity"] for e in entries[1:]} == {"WARNING"}
    assert entries[1]["jsonPayload"]["after"] == {"name": "zapier-2", "scopes": ["leads:read"]}
    text = log_path(tmp_path).read_text()
    assert created["key"] not in text
    assert created["key"][:8] not in text


def test_webhook_created_retargeted_refiltered_disabled_rekeyed_and_deleted(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    run()
    secret, rotated = "s" * 40, "t" * 40
    with Person(sandbox) as person:
        hook = person.call(
            "POST",
            "/webhooks",
            json={
                "target_hook_url": "https://hooks.acme.example/instantly",
                "event_type": "reply_received",
                "name": "replies-2",
                "headers": {"x-webhook-secret": secret},
            },
        )
        run()
        path = f"/webhooks/{hook['id']}"
        person.call("PATCH", path, json={"target_hook_url": "https://evil.example/collect"})
        run()
        person.call("PATCH", path, json={"event_type": "email_opened"})
        run()
        person.call("PATCH", path, json={"headers": {"x-webhook-secret": rotated}})
        run()
        sandbox.disable_webhook(hook["id"])
        run()
        person.call("DELETE", path)
        run()

    assert changes(tmp_path) == [
        ("webhook.created", "replies-2"),
        ("webhook.target_changed", "replies-2"),
        ("webhook.filter_changed", "replies-2"),
        ("webhook.headers_changed", "replies-2"),
        ("webhook.status_changed", "replies-2"),
        ("webhook.deleted", "replies-2"),
    ]
    entries = {e["labels"]["change"]: e for e in inventory_entries(tmp_path)}
    moved = entries["webhook.target_changed"]
    assert moved["severity"] == "WARNING"
    assert moved["jsonPayload"]["before"]["url"] == "https://hooks.acme.example/instantly"
    assert moved["jsonPayload"]["after"]["url"] == "https://evil.example/collect"
    assert entries["webhook.status_changed"]["severity"] == "WARNING"  # disabled
    rekeyed = entries["webhook.headers_changed"]["jsonPayload"]
    assert (
        rekeyed["before"]["header_names"]
        == rekeyed["after"]["header_names"]
        == ["x-webhook-secret"]
    )
    assert rekeyed["after"]["header_fingerprints"] == {
        "x-webhook-secret": header_fingerprint("x-webhook-secret", rotated)
    }
    text = log_path(tmp_path).read_text()
    assert secret not in text
    assert rotated not in text


def test_masked_header_values_are_never_fingerprinted(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    """Read masked, a value has no fingerprint: a changed value is invisible, a header added or
    removed is still seen."""
    sandbox.set_webhook_headers(read="masked", echo="masked")
    hook = sandbox.state.webhook_named(HOOK_GOOD)
    run()
    with Person(sandbox) as person:
        person.call(
            "PATCH", f"/webhooks/{hook.id}", json={"headers": {"x-webhook-secret": "u" * 40}}
        )
        assert run()["written"] == 0
        person.call(
            "PATCH",
            f"/webhooks/{hook.id}",
            json={"headers": {"x-webhook-secret": "u" * 40, "x-extra": "v" * 20}},
        )
        run()

    (entry,) = [
        e for e in inventory_entries(tmp_path) if e["labels"]["change"] != "inventory.baseline"
    ]
    assert entry["labels"]["change"] == "webhook.headers_changed"
    assert entry["jsonPayload"]["after"]["header_names"] == ["x-extra", "x-webhook-secret"]
    assert entry["jsonPayload"]["after"]["header_fingerprints"] == {}


def test_blocklist_added_and_removed_domain_ranks_high(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    run()
    with Person(sandbox) as person:
        person.call("POST", "/block-lists-entries", json={"bl_value": "rival-two.example"})
        run()
        person.call("DELETE", f"/block-lists-entries/{person.block_id(BLOCKED[0])}")
        person.call("DELETE", f"/block-lists-entries/{person.block_id(BLOCKED[2])}")
        run()

    entries = [
        e for e in inventory_entries(tmp_path) if e["labels"]["change"] != "inventory.baseline"
    ]
    rows = [
        (e["labels"]["change"], e["jsonPayload"]["object"]["name"], e["severity"]) for e in entries
    ]
    assert rows[0] == ("blocklist.added", "rival-two.example", "INFO")
    assert sorted(rows[1:]) == sorted(
        [
            ("blocklist.removed", BLOCKED[0], "WARNING"),  # a domain
            ("blocklist.removed", BLOCKED[2], "NOTICE"),  # one address
        ]
    )
    removed = {e["jsonPayload"]["object"]["name"]: e for e in entries[1:]}
    assert removed[BLOCKED[0]]["severity"] == "WARNING"
    assert removed[BLOCKED[2]]["severity"] == "NOTICE"
    assert removed[BLOCKED[0]]["jsonPayload"]["before"] == {"value": BLOCKED[0]}
    assert removed[BLOCKED[0]]["jsonPayload"]["after"] is None


def test_workspace_settings_changed_names_only_the_settings_that_moved(
    sandbox: Sandbox, tmp_path: Path, run
) -> None:
    run()
    with sandbox.state.lock:
        sandbox.state.workspace.name = "Acme Outbound (EU)"
    run()

    (entry,) = [
        e for e in inventory_entries(tmp_path) if e["labels"]["change"] != "inventory.baseline"
    ]
    payload = entry["jsonPayload"]
    assert payload["change"] == "workspace.changed"
    assert payload["before"] == {"name": "Acme Outbound"}
    assert payload["after"] == {"name": "Acme Outbound (EU)"}


def test_every_entry_follows_the_contract_shape(sandbox: Sandbox, tmp_path: Path, run) -> None:
    run()
    with Person(sandbox) as person:
        person.call(
            "PATCH",
            f"/workspace-members/{person.member_id(MEMBER_PENDING)}",
            json={"role": "admin"},
        )
    run()

    for entry in inventory_entries(tmp_path):
        payload = entry["jsonPayload"]
        assert set(payload) == {
            "source", "change", "object", "before", "after", "observed_at", "previous_snapshot_at"
        }  # fmt: skip
        assert payload["source"] == "inventory"
        assert set(payload["object"]) == {"type", "id", "name"}
        assert payload["observed_at"].endswith("Z")
        json.dumps(payload)
    last = inventory_entries(tmp_path)[-1]
    assert last["jsonPayload"]["previous_snapshot_at"] == "2026-03-04T12:15:00Z"
    assert last["timestamp"] == "2026-03-04T12:15:00Z"  # the interval's start: deterministic
