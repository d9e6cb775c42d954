"""The export evaluates the rule base on every batch it writes, against the sandbox over HTTP:
a managed rotation (the real rotation engine) produces no finding and is labelled as such, an
unmanaged key creation exactly one finding, however often the entries are exported again."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from instantly_guard.audit.service import build_service, findings_path
from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.rotation.engine import Rotator, set_current
from instantly_guard.rotation.events import RotateRequest
from instantly_guard.rotation.model import Kind, ManagedConfig
from instantly_guard.secret import Secret
from instantly_guard.secrets.local import LocalSecretStore

ADMIN, MANAGED = "instantly-admin", "audit-exporter-key"
KEY_CHANGE = "audit.key-change-outside-rotation"

_OPEN: list[InstantlyClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(sb: Any, provider: KeyProvider) -> InstantlyClient:
    client = InstantlyClient(provider, sb.base_url, rate_limiter=RateLimiter(1000, 60000))
    _OPEN.append(client)
    return client


def _rotate_twice(sb: Any, root: Path) -> None:
    """What a deployment does: a hand-made admin key in its secret, a managed secret rotated
    by SECRET_ROTATE twice (the second revokes the first key at once: grace 0)."""
    store = LocalSecretStore(root)
    labels, notes = ManagedConfig.declare(
        kind=Kind.API_KEY,
        scopes=("api_keys:create", "api_keys:delete", "api_keys:read"),
        admin_secret=None,
        grace="0s",
        retention="7d",
        key_prefix="instantly-guard",
        webhook_ids=(),
    )
    store.create_secret(ADMIN, labels=labels, annotations=notes)
    admin = sb.add_key("bootstrap admin", ["api_keys:create", "api_keys:delete", "api_keys:read"])
    set_current(store, ADMIN, Secret(admin.key), key_id=admin.id)
    labels, notes = ManagedConfig.declare(
        kind=Kind.API_KEY,
        scopes=("audit_logs:read",),
        admin_secret=ADMIN,
        grace="0s",
        retention="7d",
        key_prefix="instantly-guard",
        webhook_ids=(),
    )
    store.create_secret(MANAGED, labels=labels, annotations=notes)
    rotator = Rotator(store, lambda provider: _client(sb, provider), sleep=lambda _s: None)
    for number in (1, 2):
        rotator.handle(RotateRequest(MANAGED, "local", datetime.now(UTC), str(number)))
    rotator.sweep()


def _export(env: dict[str, str]) -> None:
    service = build_service(env)
    try:
        summary = service.run()
    finally:
        service.close()
    assert summary.error is None, summary.error


def _findings(state: Path) -> list[dict[str, Any]]:
    return [e["jsonPayload"] for e in read_entries(findings_path(state))]


def test_managed_rotation_makes_no_finding_and_an_unmanaged_key_exactly_one(
    sandbox_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sb = sandbox_factory(seed="empty")
    _rotate_twice(sb, tmp_path / "secrets")
    unmanaged = _client(sb, StaticKey(sb.keys["admin"].key)).create_api_key(
        "zapier-sync", ["leads:read"]
    )
    state = tmp_path / "state"
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.keys["admin"].key,
    }

    with caplog.at_level(logging.INFO, logger="instantly_guard.audit"):
        _export(env)
    # The run's summary line carries the lag the export-lag alert reads (a fresh entry: ~0 s).
    (line,) = [r for r in caplog.records if r.getMessage() == "audit export complete"]
    assert 0 <= line.fields["lag_seconds"] < 60  # type: ignore[attr-defined]
    audit = list(read_entries(state / "audit" / "instantly-audit.jsonl"))
    key_entries = [e for e in audit if e["labels"]["activity"].startswith("api_key_")]
    by_name = {e["jsonPayload"]["audit_metadata"]["name"]: e for e in key_entries}
    managed = [e for n, e in by_name.items() if n.startswith("instantly-guard/")]
    assert len(managed) == 2  # the two rotations' keys (the first also deleted: 3 entries)
    assert all(
        e["labels"]["managed_rotation"] == "true"
        for e in key_entries
        if e is not by_name["zapier-sync"]
    )
    assert by_name["zapier-sync"]["labels"]["managed_rotation"] == "false"

    found = [f for f in _findings(state) if f["rule"] == KEY_CHANGE]
    assert len(found) == 1, json.dumps(found, indent=1)
    assert found[0]["audit_entry_ids"] == [by_name["zapier-sync"]["insertId"]]
    assert "zapier-sync" in found[0]["message"]
    assert found[0]["technique"] == "T1098.001"
    assert found[0]["severity"] == "high"
    assert unmanaged.id in json.dumps(by_name["zapier-sync"]["jsonPayload"])

    # The same entries exported again (a lost checkpoint): the incident is not reported twice.
    (state / "audit" / "checkpoint.json").unlink()
    _export(env)
    assert len(list(read_entries(state / "audit" / "instantly-audit.jsonl"))) == 2 * len(audit)
    assert len([f for f in _findings(state) if f["rule"] == KEY_CHANGE]) == 1
