"""`webhooks.header-readable` (issue 18): whether a plain read-only key reads the receiver's secret
header value through `GET /webhooks`. Instantly does not document whether it masks header values;
the sandbox answers either way (`webhook_header_read` raw or masked) and the rule must tell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.check.check_fixtures import failed, run, snapshot

from instantly_guard import scopes
from instantly_guard.check import Policy, Report, Severity, WebhookInfo, run_check
from instantly_guard.check.collect import header_readable
from instantly_guard.check.rules import webhooks
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_sandbox import Sandbox

SECRET = "whsec-0123456789abcdef0123456789abcdef"  # pragma: allowlist secret


def hook(hook_id: str, readable: tuple[str, ...]) -> WebhookInfo:
    return WebhookInfo(
        id=hook_id,
        target_url="https://receiver.example/instantly",
        header_names=("x-webhook-secret",),
        readable_headers=readable,
    )


def test_a_readable_header_value_is_critical_and_names_what_to_do() -> None:
    snap = snapshot(webhooks=(hook("open", ("x-webhook-secret",)), hook("masked", ())))
    found = failed(run(webhooks.header_readable, snap))
    assert [f.subject for f in found] == ["webhook/open"]
    assert found[0].severity is Severity.CRITICAL
    assert "any key in the workspace can forge deliveries" in found[0].evidence
    assert "Rotate the webhook secret often" in found[0].fix


@pytest.mark.parametrize(
    ("value", "readable"),
    [
        (SECRET, True),
        ("whse********", False),
        ("••••••••", False),
        ("whsec-...", False),
        ("", False),
        (None, False),
    ],
)
def test_masked_values_are_told_from_real_ones(value: object, readable: bool) -> None:
    assert header_readable(value) is readable


@pytest.fixture(params=["raw", "masked"])
def workspace(request: pytest.FixtureRequest) -> Iterator[tuple[Sandbox, str]]:
    with Sandbox(seed="demo", webhook_header_read=request.param) as sandbox:
        yield sandbox, request.param


def check(sandbox: Sandbox) -> Report:
    reader = sandbox.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
    with InstantlyClient(
        StaticKey(reader.key), sandbox.base_url, rate_limiter=RateLimiter(1000, 60000)
    ) as client:
        return run_check(client, Policy())


def test_the_check_reports_readable_header_values_only_when_instantly_shows_them(
    workspace: tuple[Sandbox, str],
) -> None:
    sandbox, view = workspace
    with_headers = [w for w in sandbox.state.webhooks.values() if w.headers]
    assert with_headers  # the demo workspace has webhooks with a secret header
    report = check(sandbox)
    findings = [f for f in report.findings if f.rule_id == "webhooks.header-readable"]
    if view == "raw":
        assert {f.subject for f in findings} == {f"webhook/{w.id}" for w in with_headers}
        assert all(f.status == "fail" for f in findings)
    else:
        assert [f.status for f in findings] == ["pass"]
    values = [v for w in with_headers for v in (w.headers or {}).values()]
    text = str([f.as_dict() for f in report.findings])
    assert not any(v in text for v in values)  # the value itself is never reported
