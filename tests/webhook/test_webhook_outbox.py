"""The local outbox: durable, exactly once per event id under threads and processes; the CLI."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from instantly_guard.cli import outbox as outbox_cli
from instantly_guard.publish.local import OutboxPublisher, read_outbox


def _publish_range(state_dir: str, start: int, count: int) -> None:
    publisher = OutboxPublisher(Path(state_dir))
    for n in range(start, start + count):
        # Every process publishes the same ids: each must end up stored once.
        publisher.publish(json.dumps({"n": n}).encode(), {"event_id": f"id-{n}"}, 5.0)


def test_each_event_is_stored_once_under_threads(tmp_path):
    publisher = OutboxPublisher(tmp_path)

    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda n: publisher.publish(
                    b'{"n": %d}' % (n % 50), {"event_id": f"id-{n % 50}"}, 5
                ),
                range(400),
            )
        )

    stored = list(read_outbox(tmp_path))
    assert sorted(m.id for m in stored) == sorted(f"id-{n}" for n in range(50))
    assert not [p for p in (tmp_path / "outbox").iterdir() if p.name.startswith(".tmp-")]


def test_each_event_is_stored_once_across_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_publish_range, args=(str(tmp_path), 0, 60)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)

    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    stored = list(read_outbox(tmp_path))
    assert len(stored) == 60
    assert {json.loads(m.data)["n"] for m in stored} == set(range(60))


def test_message_without_event_id_is_keyed_by_its_content(tmp_path):
    publisher = OutboxPublisher(tmp_path)

    first = publisher.publish(b"\x00\x01binary", {"kind": "x"}, 1)
    second = publisher.publish(b"\x00\x01binary", {"kind": "x"}, 1)

    assert first == second
    [message] = read_outbox(tmp_path)
    assert message.data == b"\x00\x01binary"
    assert message.as_json()["data_text"] == "\x00\x01binary"


def test_files_are_private(tmp_path):
    OutboxPublisher(tmp_path).publish(b"{}", {"event_id": "abc"}, 1)

    mode = os.stat(tmp_path / "outbox" / "abc.json").st_mode & 0o777
    assert mode == 0o600


def test_cli_prints_one_json_line_per_event_oldest_first(tmp_path, capsys):
    publisher = OutboxPublisher(tmp_path)
    publisher.publish(b'{"event_type": "email_sent"}', {"event_id": "first"}, 1)
    publisher.publish(b'{"event_type": "reply_received"}', {"event_id": "second"}, 1)
    parser = argparse.ArgumentParser()
    outbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(["outbox", "--state-dir", str(tmp_path)])

    assert args.handler(args) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == ["first", "second"]
    assert lines[1]["data"] == {"event_type": "reply_received"}
    assert lines[1]["attributes"] == {"event_id": "second"}


def test_cli_on_an_empty_state_dir_prints_nothing(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    outbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(["outbox", "--state-dir", str(tmp_path)])

    assert args.handler(args) == 0
    assert capsys.readouterr().out == ""


def test_cli_on_a_missing_state_dir_is_an_error_not_an_empty_outbox(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    outbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(["outbox", "--state-dir", str(tmp_path / "none")])

    assert args.handler(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no state directory" in captured.err


def test_outbox_directory_removed_after_first_write_is_created_again(tmp_path):
    import shutil

    publisher = OutboxPublisher(tmp_path / "state")
    publisher.publish(b'{"n": 1}', {"event_id": "first"}, 1)
    shutil.rmtree(tmp_path / "state")  # someone cleared GUARD_STATE_DIR while the server ran

    assert publisher.publish(b'{"n": 2}', {"event_id": "second"}, 1) == "second"

    assert [m.id for m in read_outbox(tmp_path / "state")] == ["second"]


def test_outbox_write_retries_a_missing_directory_once_only(tmp_path, monkeypatch):
    import pytest

    from instantly_guard.publish.base import PublishError

    publisher = OutboxPublisher(tmp_path)
    calls = []

    def missing(final, record):
        calls.append(final)
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(publisher, "_write_new", missing)

    with pytest.raises(PublishError, match="No such file or directory"):
        publisher.publish(b"{}", {"event_id": "abc"}, 1)
    assert len(calls) == 2


def _outbox_process(state_dir, *extra):
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "instantly_guard.cli",
            "outbox",
            "--state-dir",
            str(state_dir),
            *extra,
        ],
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def test_cli_prints_an_event_with_a_lone_surrogate_and_every_event_after_it(tmp_path):
    publisher = OutboxPublisher(tmp_path)
    publisher.publish(b'{"event_type": "a"}', {"event_id": "e1"}, 1)
    publisher.publish(b'{"event_type": "b", "note": "\\ud800"}', {"event_id": "e2"}, 1)
    publisher.publish(b'{"event_type": "c"}', {"event_id": "e3"}, 1)
    (tmp_path / "outbox" / "broken.json").write_text("{not json", encoding="utf-8")

    for fmt in ("json", "text"):
        result = _outbox_process(tmp_path, "--format", fmt)
        assert b"Traceback" not in result.stderr, result.stderr
        out = result.stdout.decode("utf-8").splitlines()
        assert len(out) == 3
        assert result.returncode == 1  # the unreadable file, reported on stderr
        assert b"broken.json" in result.stderr
    lines = [json.loads(line) for line in _outbox_process(tmp_path).stdout.splitlines()]
    assert [line["id"] for line in lines] == ["e1", "e2", "e3"]
    assert lines[1]["data"]["note"] == "\ud800"
