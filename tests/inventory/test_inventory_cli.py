"""`instantly-guard changes`: the recorded changes as text for a person and JSON for a program."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instantly_guard.cli import main
from instantly_sandbox import Sandbox
from instantly_sandbox.seed import MEMBER_PENDING

from .inventory_support import Clock, Person, service


@pytest.fixture
def recorded(sandbox: Sandbox, tmp_path: Path) -> Path:
    clock = Clock()
    svc = service(sandbox, tmp_path, clock)
    svc.run()
    with Person(sandbox) as person:
        member = person.member_id(MEMBER_PENDING)
        person.call("PATCH", f"/workspace-members/{member}", json={"role": "admin"})
        hook = next(iter(sandbox.state.webhooks))
        person.call(
            "PATCH", f"/webhooks/{hook}", json={"target_hook_url": "https://x.example/\x1b[2J"}
        )
    clock.advance()
    svc.run()
    svc.close()
    return tmp_path


def test_text_lists_each_change_on_one_line(recorded: Path, capsys) -> None:
    code = main(["changes", "--state-dir", str(recorded), "--format", "text"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == 3  # the baseline, the promotion, the retarget
    promoted = next(line for line in lines if "member.role_changed" in line)
    assert "WARNING" in promoted
    assert f"member {MEMBER_PENDING}" in promoted
    assert "role: editor -> admin" in promoted
    retarget = next(line for line in lines if "webhook.target_changed" in line)
    assert "\x1b" not in retarget
    assert "\\x1b[2J" in retarget


def test_json_and_since(recorded: Path, capsys) -> None:
    main(["changes", "--state-dir", str(recorded), "--format", "json"])
    everything = json.loads(capsys.readouterr().out)
    main(
        [
            "changes",
            "--state-dir",
            str(recorded),
            "--format",
            "json",
            "--since",
            "2026-03-04T12:10:00Z",
        ]
    )
    later = json.loads(capsys.readouterr().out)

    assert [e["labels"]["change"] for e in everything["changes"]] == [
        "inventory.baseline",
        "member.role_changed",
        "webhook.target_changed",
    ]
    assert [e["labels"]["change"] for e in later["changes"]] == [
        "member.role_changed",
        "webhook.target_changed",
    ]


def test_a_bad_since_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code = main(["changes", "--state-dir", str(tmp_path), "--since", "last tuesday"])

    assert code == 2
    assert "--since" in capsys.readouterr().err
