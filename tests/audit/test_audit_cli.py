"""`instantly-guard export-audit`: a scheduled-style run, and backfills that leave the stored
checkpoint alone."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.cli import main

from .audit_support import assert_exact


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def env(sandbox_factory, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(seed="empty", listing_order="random")
    for name in [n for n in os.environ if n.startswith(("AUDIT_", "GUARD_", "INSTANTLY_"))]:
        monkeypatch.delenv(name)
    values = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.keys["admin"].key,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return sb


def _sink(tmp_path):  # type: ignore[no-untyped-def]
    return tmp_path / "audit" / "instantly-audit.jsonl"


def test_export_audit_runs_once_and_prints_the_summary(env, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    env.seed_audit_logs(1200, step=timedelta(minutes=1))

    code = main(["export-audit"])

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["exported"] == 1200
    assert summary["stopped_reason"] == "complete"
    assert (tmp_path / "audit" / "checkpoint.json").exists()
    assert main(["export-audit"]) == 0
    assert json.loads(capsys.readouterr().out)["exported"] == 0


def test_a_backfill_exports_its_window_and_leaves_the_checkpoint_alone(
    env, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=40
    )
    ids = env.seed_audit_logs(30 * 24, start=start, step=timedelta(hours=1))  # days -40 .. -11
    since = (start + timedelta(days=5)).date()
    until = (start + timedelta(days=9)).date()

    code = main(["export-audit", "--since", since.isoformat(), "--until", until.isoformat()])

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["exported"] == 5 * 24
    # Every occurrence, not a set: a duplicate written by the backfill must fail the test.
    assert_exact([e["insertId"] for e in read_entries(_sink(tmp_path))], ids[5 * 24 : 10 * 24])
    assert not (tmp_path / "audit" / "checkpoint.json").exists()


def test_a_backfill_to_now_then_the_first_scheduled_run_writes_every_entry_once(
    env, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """On a new deployment: `export-audit --since` (reaching the present), then the scheduled
    run. The scheduled run's lookback (7 days) lies inside the backfill: it must not write those
    entries again (log-based metrics and sinks would count them twice)."""
    now = datetime.now(UTC)
    ids = env.seed_audit_logs(20 * 24, start=now - timedelta(days=20), step=timedelta(hours=1))
    since = (now - timedelta(days=21)).date()

    assert main(["export-audit", "--since", since.isoformat()]) == 0
    assert json.loads(capsys.readouterr().out)["exported"] == len(ids)
    later = [env.add_audit_log(1, at=datetime.now(UTC) - timedelta(seconds=s)) for s in (2, 1)]
    assert main(["export-audit"]) == 0

    assert json.loads(capsys.readouterr().out)["exported"] == len(later)
    assert_exact([e["insertId"] for e in read_entries(_sink(tmp_path))], ids + later)


def test_a_backfill_inside_the_lookback_leaves_the_schedule_its_own_start(
    env, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """A backfill of the last 2 days must not stand for the scheduled run's 7-day lookback: the
    entries before it would never be exported."""
    now = datetime.now(UTC)
    env.seed_audit_logs(5 * 24, start=now - timedelta(days=5), step=timedelta(hours=1))
    assert main(["export-audit", "--since", (now - timedelta(days=1)).date().isoformat()]) == 0
    capsys.readouterr()
    assert not (tmp_path / "audit" / "checkpoint.json").exists()


def test_a_run_without_a_paid_plan_exits_2_with_the_error_in_the_summary(env, capsys) -> None:  # type: ignore[no-untyped-def]
    env.set_paid_plan(False)

    code = main(["export-audit"])

    assert code == 2  # the plan is configuration a person fixes: the CLI's exit code table
    assert json.loads(capsys.readouterr().out)["error"]["kind"] == "no_paid_plan"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--until", "2026-01-01"], "needs --since"),
        (["--since", "2026-01-05", "--until", "2026-01-01"], "before --since"),
        (["--since", "2999-01-01"], "in the future"),
    ],
)
def test_bad_date_ranges_are_refused(env, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    assert main(["export-audit", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_malformed_date_is_an_argument_error(env, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["export-audit", "--since", "yesterday"])
    assert "not a date" in capsys.readouterr().err


def test_missing_configuration_exits_2(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    for name in [n for n in os.environ if n.startswith(("AUDIT_", "GUARD_", "INSTANTLY_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GUARD_BACKEND", "local")
    assert main(["export-audit"]) == 2
    assert "no Instantly key" in capsys.readouterr().err


def _screen(raw: str) -> list[str]:
    """What a terminal shows for `raw`: a carriage return goes back to the start of the line
    and later text overwrites what was there (no other control sequences are used)."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for char in raw.replace("\r\n", "\n"):
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char == "\r":
            column = 0
        else:
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    if line:
        lines.append("".join(line).rstrip())
    return lines


def test_a_backfill_on_a_terminal_shows_progress_and_a_readable_summary(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Run as a person would, on a pseudo-terminal: the progress line is drawn, a log line never
    lands after it, and the summary says the backfill's own checkpoint is gone."""
    import pty
    import select
    import subprocess
    import sys

    start = datetime.now(UTC) - timedelta(days=3)
    env.seed_audit_logs(5000, start=start, step=timedelta(seconds=40))
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "instantly_guard.cli",
            "export-audit",
            "--since",
            start.date().isoformat(),
        ],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "AUDIT_LOOKBACK": "7d", "NO_COLOR": "1"},
    )
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            process.kill()
            pytest.fail("export-audit wrote nothing for 60 s")
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal is closed once the process has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(30) == 0
    raw = b"".join(chunks).decode()
    assert "export-audit: " in raw  # the progress line was drawn
    screen = _screen(raw)
    assert [ln for ln in screen if "export-audit: " in ln] == []  # and cleared
    assert any("complete" in ln for ln in screen if "INFO" in ln)  # the run's log line
    assert "Backfill complete." in screen
    assert any("5,000 entries" in ln for ln in screen)
    assert any("the backfill's own checkpoint is deleted" in ln for ln in screen)
