"""The posture check against the demo workspace under every plausible Instantly behaviour of
`tests/api_variants.py`: every section is read and every rule decided (nothing skipped), and a
key without a scope degrades only the sections that need it, naming the scope."""

from __future__ import annotations

from typing import Any

import pytest
from tests.api_variants import SCOPE_ERROR_VARIANTS, ApiVariant, CountingKey, params

from instantly_guard import scopes
from instantly_guard.check import WORKSPACE_RULE_IDS, Policy, run_check
from instantly_guard.check.managed import ManagedKeys
from instantly_guard.instantly import InstantlyClient, RateLimiter
from instantly_sandbox import seed as demo_seed

POSTURE_SCOPES = scopes.PROFILES["posture_check"].scope_strings
DEMO_POLICY = Policy.from_mapping(demo_seed.DEMO_POLICY)


def _check(sb: Any, key: CountingKey) -> Any:
    limiter = RateLimiter(1000, 60000)
    with InstantlyClient(key, sb.base_url, rate_limiter=limiter, max_retries=0) as client:
        # The store holds no managed secret: the demo's managed-looking key is a leftover.
        return run_check(client, DEMO_POLICY, managed=ManagedKeys(frozenset(), frozenset()))


@pytest.mark.parametrize("variant", params())
def test_the_check_reads_every_section(sandbox_factory: Any, variant: ApiVariant) -> None:
    sb = sandbox_factory(seed="demo", **variant.sandbox)
    key = CountingKey(sb.add_key("posture-check", POSTURE_SCOPES).key)

    report = _check(sb, key)

    assert [f.rule_id for f in report.findings if f.skipped] == []
    assert report.workspace_name == demo_seed.WORKSPACE_NAME
    # Every planted problem is still found: a malformed entry keeps its activity, and its time
    # comes from its UUIDv7 id; a null origin is inferred from the acting key.
    assert {f.rule_id for f in report.failed} == WORKSPACE_RULE_IDS
    assert key.refreshes == 0


@pytest.mark.parametrize("variant", params(SCOPE_ERROR_VARIANTS))
def test_a_missing_scope_degrades_its_sections_and_names_the_scope(
    sandbox_factory: Any, variant: ApiVariant
) -> None:
    sb = sandbox_factory(seed="demo", **variant.sandbox)
    without_audit = [s for s in POSTURE_SCOPES if s != "audit_logs:read"]
    key = CountingKey(sb.add_key("no-audit", without_audit).key)

    report = _check(sb, key)

    skipped = {f.rule_id for f in report.findings if f.skipped}
    assert skipped == {r for r in WORKSPACE_RULE_IDS if r.startswith("audit.")}
    for finding in report.findings:
        if finding.skipped:
            assert "lacks audit_logs:read" in finding.evidence
    assert key.refreshes == 0
