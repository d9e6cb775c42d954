"""Workspace-controlled strings reach every text output inert (issue 18): escape sequences and
control characters in display names, audit IP addresses, email domains and event types are shown
escaped, never sent raw to the operator's terminal."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from instantly_guard import scopes
from instantly_guard.cli import main, output
from instantly_guard.logs import TextFormatter
from instantly_guard.publish.local import OutboxPublisher
from instantly_guard.terminal import safe
from instantly_sandbox import Sandbox
from instantly_sandbox import seed as demo_seed

# What an attacker puts in a field: erase the line and move up (CSI), retitle the terminal and
# plant a hyperlink (OSC ... BEL), single-byte CSI (C1), carriage return, backspace, a forged
# newline, a bidirectional override.
HOSTILE = "\x1b[2K\x1b[1A\x1b]0;owned\x07\x1b]8;;http://evil.example\x1b\\x\x9b2J\r\b\b\nFAKE\u202e"
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def inert(text: str) -> bool:
    """No control character but the line breaks the output itself writes."""
    return UNSAFE.search(text) is None


def test_safe_escapes_every_sequence_introducer_visibly() -> None:
    shown = safe(HOSTILE)
    assert inert(shown)
    assert "\n" not in shown
    assert shown.startswith("\\x1b[2K\\x1b[1A\\x1b]0;owned\\x07")
    assert "\\x9b2J\\x0d\\x08\\x08\\x0aFAKE\\u202e" in shown
    assert safe("plain ascii, é and 中文") == "plain ascii, é and 中文"
    assert safe("\ud800") == "\\ud800"


@pytest.fixture
def hostile_workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(seed="demo") as sandbox:
        ws = sandbox.state
        ws.add_member(f"mallory@evil{HOSTILE}.example", "editor", first_name=f"Mal{HOSTILE}")
        now = datetime.now(UTC)
        for hours in (3, 2, 1):
            sandbox.add_audit_log(
                29,
                at=now - timedelta(hours=hours),
                user_id="019ffad2-5c3e-7d8a-963d-6ecaf1ba9999",
                user_name=f"Eve{HOSTILE}",
                ip_address=f"203.0.113.9{HOSTILE}",
                from_api=False,
            )
        key = sandbox.add_key("posture-check", scopes.PROFILES["posture_check"].scope_strings)
        monkeypatch.setenv("INSTANTLY_API_BASE", sandbox.base_url)
        monkeypatch.setenv("INSTANTLY_API_KEY", key.key)
        for name in ("INSTANTLY_API_KEY_FILE", "NO_COLOR", "FORCE_COLOR", "GUARD_BACKEND"):
            monkeypatch.delenv(name, raising=False)
        yield sandbox


def test_the_check_table_shows_hostile_workspace_strings_escaped(
    hostile_workspace: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in demo_seed.DEMO_POLICY.items()))
    main(["check", "--no-repo", "--format", "table", "--policy", str(policy)])
    table = capsys.readouterr().out
    assert inert(table)
    assert "FAKE" in table  # the forged line is shown, but inside its own finding's line
    assert not any(line.startswith("FAKE") for line in table.splitlines())
    assert "Eve\\x1b[2K" in table  # display name, escaped
    assert "203.0.113.9\\x1b[2K" in table  # audit IP address, escaped
    assert "\\x1b]0;owned\\x07" in table  # email domain (members.outside-domain), escaped


def test_outbox_text_shows_a_hostile_event_type_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"event_type": f"reply_received{HOSTILE}", "timestamp": "2026-03-01T00:00:00Z"}
    OutboxPublisher(tmp_path).publish(json.dumps(body).encode(), {}, timeout=5)
    assert main(["outbox", "--state-dir", str(tmp_path), "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert inert(text)
    assert "reply_received\\x1b[2K" in text


def test_cli_tables_fields_and_text_emitters_escape_values() -> None:
    table = output.table(["name", "value"], [[f"a{HOSTILE}", None]])
    fields = output.fields([("name", f"b{HOSTILE}")])
    assert inert(table)
    assert len(table.splitlines()) == 2
    assert inert(fields)
    assert len(fields.splitlines()) == 1
    assert inert(output.terminal_text(f"line one\nline two {HOSTILE}"))


def test_readable_log_lines_escape_messages_and_fields() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "finding: %s", (HOSTILE,), None)
    record.fields = {"ip": HOSTILE}
    line = TextFormatter().format(record)
    assert inert(line)
    assert "\n" not in line
