"""The demo's verdicts: a step that depends on a failed one is marked not run, never ok (no
stack is started: the steps are the demo's own, given as its plan)."""

from __future__ import annotations

import io
from pathlib import Path

from instantly_guard.localstack.demo import NEEDS, Demo
from instantly_guard.localstack.state import ServiceInfo, StackInfo


def _demo(tmp_path: Path) -> tuple[Demo, io.StringIO]:
    service = ServiceInfo(url="http://127.0.0.1:1/", pid=0, log="")
    info = StackInfo(
        pid=0,
        started="now",
        state_dir=str(tmp_path),
        sandbox=service,
        api_base="http://127.0.0.1:1/api/v2",
        control_url="http://127.0.0.1:1/_sandbox",
        functions={},
        webhook_id="w",
    )
    out = io.StringIO()
    return Demo(info, out), out


def test_a_step_after_a_failed_rotation_is_not_run_and_not_ok(tmp_path: Path) -> None:
    demo, out = _demo(tmp_path)
    ran: list[str] = []

    def export_again() -> tuple[bool, str]:
        ran.append("export")
        return True, "exported with the old key"  # what the demo used to report as ok

    steps = demo.run(
        [
            ("key rotated, old key revoked", lambda: (False, "rotation answered 500")),
            ("export works with the new key", export_again),
            ("posture check", lambda: (True, "2 findings")),
        ]
    )

    assert ran == []
    by_title = {s.title: s for s in steps}
    dependent = by_title["export works with the new key"]
    assert (dependent.ok, dependent.ran) == (False, False)
    assert "key rotated, old key revoked" in dependent.detail
    assert by_title["posture check"].ok  # independent steps still run
    assert "1/3 steps passed, 1 not run." in out.getvalue()


def test_every_dependency_names_a_step_of_the_demo(tmp_path: Path) -> None:
    demo, _ = _demo(tmp_path)
    titles = [title for title, _ in demo.plan()]
    for step, needed in NEEDS.items():
        assert titles.index(needed) < titles.index(step)
