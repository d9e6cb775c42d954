from __future__ import annotations

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
    policy = Policy(webhook_allowed_hosts=("hooks.example.com",))
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
