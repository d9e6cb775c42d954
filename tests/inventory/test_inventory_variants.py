"""The inventory's flow under every API variant (tests/api_variants.py): a change is recorded
once, and a key lacking a scope is a scope diagnosis under every wording of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.api_variants import SCOPE_ERROR_VARIANTS, ApiVariant, params

from instantly_guard.inventory.run import Outcome
from instantly_guard.inventory.service import build_service, respond
from instantly_sandbox.seed import MEMBER_PENDING

from .inventory_support import Clock, Person, changes, log_path, service


@pytest.mark.parametrize("variant", params())
def test_a_promotion_and_a_new_key_are_recorded_once(
    sandbox_factory, tmp_path: Path, variant: ApiVariant
) -> None:
    sb = sandbox_factory(seed="demo", **variant.sandbox)
    clock = Clock()
    svc = service(sb, tmp_path, clock)
    assert svc.run().outcome == Outcome.BASELINE
    with Person(sb) as person:
        member = person.member_id(MEMBER_PENDING)
        person.call("PATCH", f"/workspace-members/{member}", json={"role": "admin"})
        created = person.call("POST", "/api-keys", json={"name": "late", "scopes": ["leads:read"]})
    clock.advance()
    report = svc.run()
    clock.advance()
    again = svc.run()
    svc.close()

    assert report.outcome == Outcome.CHANGED, report.error
    assert again.outcome == Outcome.UNCHANGED
    assert sorted(changes(tmp_path)) == [
        ("key.created", "late"),
        ("member.role_changed", MEMBER_PENDING),
    ]
    assert created["key"] not in log_path(tmp_path).read_text()


@pytest.mark.parametrize("variant", params(SCOPE_ERROR_VARIANTS))
def test_a_missing_scope_is_diagnosed_in_every_wording(
    sandbox_factory, tmp_path: Path, variant: ApiVariant
) -> None:
    sb = sandbox_factory(seed="demo", **variant.sandbox)
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.add_key("narrow", ["api_keys:read", "workspaces:read"]).key,
    }
    svc = build_service(env, client_options={"max_retries": 0})

    response = respond(svc.run())
    svc.close()

    assert response.status == 500
    assert response.body["error"]["kind"] == "missing_scope"
    assert not log_path(tmp_path).exists()
