"""The JSONL sink never leaves a torn line: a failed append is rolled back, an append after a
torn tail starts on a fresh line, and `read_entries` reads past a torn line.

The failed append is real: a child process writes under a file-size limit (`RLIMIT_FSIZE`), so
the kernel refuses the write part-way, as a full disk does."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from instantly_guard.audit.entries import to_export_entry
from instantly_guard.audit.sinks.local import JsonlSink, read_entries

from .audit_support import T0, spread

_CHILD = """
import resource, signal, sys
from datetime import timedelta
from pathlib import Path
from instantly_guard.audit.entries import to_export_entry
from instantly_guard.audit.sinks.local import JsonlSink
from instantly_guard.errors import BackendError
from tests.audit.audit_support import T0, spread

path, limit = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
entries = [to_export_entry(r) for r in spread(50, T0 + timedelta(hours=1), timedelta(seconds=1))]
try:
    JsonlSink(path).write(entries)
except BackendError as exc:
    print("refused:", exc)
else:
    print("written")
"""


def _entries(n: int, start_hours: int = 0) -> list:  # type: ignore[type-arg]
    records = spread(n, T0 + timedelta(hours=start_hours), timedelta(seconds=1))
    return [to_export_entry(r) for r in records]


def test_an_append_the_disk_refuses_part_way_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = _entries(20)
    JsonlSink(path).write(first)
    size = path.stat().st_size
    root = Path(__file__).resolve().parents[2]

    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(size + 3000)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    assert child.stdout.startswith("refused:"), child.stdout + child.stderr
    assert path.stat().st_size == size  # nothing of the refused batch is left
    assert path.read_bytes().endswith(b"\n")
    assert [e["insertId"] for e in read_entries(path)] == [e.insert_id for e in first]
    again = _entries(5, start_hours=2)
    JsonlSink(path).write(again)
    ids = [e["insertId"] for e in read_entries(path)]
    assert ids == [e.insert_id for e in first + again]


def test_a_torn_tail_is_skipped_by_readers_and_the_next_append_starts_a_fresh_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    first = _entries(3)
    JsonlSink(path).write(first)
    with path.open("ab") as handle:  # what a crash in the middle of a write leaves behind
        handle.write(b'{"logName":"instantly-audit","insertId":"torn-')

    assert [e["insertId"] for e in read_entries(path)] == [e.insert_id for e in first]
    later = _entries(2, start_hours=3)
    JsonlSink(path).write(later)

    lines = path.read_text().splitlines()
    assert lines[3].startswith('{"logName":"instantly-audit","insertId":"torn-')
    ids = [e["insertId"] for e in read_entries(path)]
    assert ids == [e.insert_id for e in first + later]
