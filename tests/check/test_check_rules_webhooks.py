from __future__ import annotations

import dataclasses

from tests.check.check_fixtures import failed, run, snapshot, webhook

from instantly_guard.check import Policy
from instantly_guard.check.rules import webhooks

BASIC_AUTH_URL = (
    "http://user:pa55@legacy.example.com:8080/webhooks/instantly"  # pragma: allowlist secret
)


def test_plain_http_target_fails_without_showing_the_query_string() -> None:
    snap = snapshot(
        webhooks=(webhook("a", "http://hooks.example.com/in?token=s3cr3t-value"), webhook("b"))
    )
    found = failed(run(webhooks.plain_http, snap))
    assert [f.subject for f in found] == ["webhook/a"]
    assert "http://hooks.example.com/in" in found[0].evidence
    assert "s3cr3t" not in found[0].evidence


def test_missing_or_empty_headers_both_fail() -> None:
    snap = snapshot(
        webhooks=(webhook("none", headers=None), webhook("empty", headers=()), webhook("ok"))
    )
    assert [f.subject for f in failed(run(webhooks.no_auth_header, snap))] == [
        "webhook/none",
        "webhook/empty",
    ]


def test_one_header_name_held_in_two_cases_fails() -> None:
    snap = snapshot(
        webhooks=(
            webhook("twice", headers=("X-Webhook-Secret", "x-crm-tenant", "x-webhook-secret")),
            webhook("once", headers=("X-Webhook-Secret", "x-crm-tenant")),
        )
    )
    found = failed(run(webhooks.duplicate_header, snap))
    assert [f.subject for f in found] == ["webhook/twice"]
    assert "X-Webhook-Secret, x-webhook-secret" in found[0].evidence


def test_webhook_disabled_by_instantly_fails() -> None:
    snap = snapshot(webhooks=(webhook("off", status=-1), webhook("on", status=1)))
    found = failed(run(webhooks.disabled, snap))
    assert [f.subject for f in found] == ["webhook/off"]
    assert "events are lost" in found[0].evidence


def test_host_allow_list_accepts_exact_and_wildcard_hosts() -> None:
    snap = snapshot(
        webhooks=(
            webhook("a", "https://hooks.example.com/x"),
            webhook("b", "https://fn-abc.a.run.app/receive"),
            webhook("c", "https://webhook.site/123"),
        )
    )
    policy = Policy(webhook_allowed_hosts=("hooks.example.com", "*.run.app"))
    found = failed(run(webhooks.host_not_allowed, snap, policy))
    assert [f.subject for f in found] == ["webhook/c"]
    assert "webhook.site" in found[0].evidence


def test_host_rule_is_skipped_without_an_allow_list() -> None:
    findings = run(webhooks.host_not_allowed, snapshot(webhooks=(webhook(),)))
    assert [f.status for f in findings] == ["skip"]
    assert "webhook_allowed_hosts" in findings[0].evidence


def test_a_good_webhook_passes_every_rule() -> None:
    policy = Policy(webhook_allowed_hosts=("hooks.example.com",), managed_webhooks=("w1",))
    for rule in webhooks.RULES:
        assert [f.status for f in run(rule, snapshot(webhooks=(webhook(),)), policy)] == ["pass"]


def test_token_like_path_segments_are_masked_in_evidence() -> None:
    hooks = (
        webhook("z", "http://hooks.zapier.com/hooks/catch/4821337/b7xk2q9/"),
        webhook("s", "http://hooks.slack.com/services/T0AB12CD/B0EF34GH/Xa9Lm2Qp7Rz4Tn8Vb3Kc"),
        webhook("u", BASIC_AUTH_URL),
    )
    evidence = [f.evidence for f in failed(run(webhooks.plain_http, snapshot(webhooks=hooks)))]
    assert evidence == [
        "webhook 'hook z' (id z, event reply_received) delivers to "
        "http://hooks.zapier.com/hooks/catch/***/***/",
        "webhook 'hook s' (id s, event reply_received) delivers to "
        "http://hooks.slack.com/services/***/***/***",
        "webhook 'hook u' (id u, event reply_received) delivers to "
        "http://legacy.example.com:8080/webhooks/instantly",
    ]


def test_a_target_with_an_invalid_port_is_reported_not_raised() -> None:
    snap = snapshot(webhooks=(webhook("p", "http://hooks.example.com:99999/in"),))
    [found] = failed(run(webhooks.plain_http, snap))
    assert "<unparsable URL>" in found.evidence


def test_a_foreign_webhook_aimed_at_our_receiver_fails() -> None:
    """Our webhooks are the ids the managed webhook secrets record; our receiver is where they
    deliver. Another webhook to that URL is someone else's (issue 18)."""
    receiver = "https://receiver.example.run.app/"
    snap = dataclasses.replace(
        snapshot(
            webhooks=(
                webhook("ours", receiver),
                webhook("foreign", receiver, headers=None),
                webhook("elsewhere", "https://hooks.example.com/other"),
            )
        ),
        managed_webhook_ids=frozenset({"ours"}),
    )
    found = failed(run(webhooks.foreign_to_receiver, snap))
    assert [f.subject for f in found] == ["webhook/foreign"]
    assert "not one of ours" in found[0].evidence


def test_the_foreign_webhook_rule_passes_with_only_ours_and_skips_without_managed_ids() -> None:
    receiver = "https://receiver.example.run.app/"
    hooks = (webhook("ours", receiver), webhook("elsewhere", "https://hooks.example.com/x"))
    clean = dataclasses.replace(snapshot(webhooks=hooks), managed_webhook_ids=frozenset({"ours"}))
    assert [f.status for f in run(webhooks.foreign_to_receiver, clean)] == ["pass"]
    unknown = run(webhooks.foreign_to_receiver, snapshot(webhooks=hooks))
    assert [f.status for f in unknown] == ["skip"]


def test_managed_webhook_ids_come_from_the_webhook_secrets_declarations(tmp_path) -> None:
    from instantly_guard.check.managed import read_managed_keys
    from instantly_guard.rotation.model import Kind, ManagedConfig
    from instantly_guard.secrets.local import LocalSecretStore

    store = LocalSecretStore(tmp_path)
    labels, notes = ManagedConfig.declare(
        kind=Kind.API_KEY, scopes=("webhooks:update",), admin_secret=None
    )
    store.create_secret("admin", labels=labels, annotations=notes)
    labels, notes = ManagedConfig.declare(
        kind=Kind.WEBHOOK_SECRET,
        admin_secret="admin",  # pragma: allowlist secret
        webhook_ids=("wh-1", "wh-2"),
    )
    store.create_secret("hook", labels=labels, annotations=notes)
    assert read_managed_keys(store).webhook_ids == {"wh-1", "wh-2"}
