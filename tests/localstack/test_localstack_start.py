"""A start that cannot succeed (a busy port) refuses before it touches the previous run's state,
and says which ports the stack needs (no processes are started here)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from instantly_guard.errors import ConfigError
from instantly_guard.localstack import state
from instantly_guard.localstack.processes import check_ports
from instantly_guard.localstack.stack import LocalStack, Ports


def test_a_start_refused_on_a_busy_port_keeps_the_previous_runs_state(tmp_path: Path) -> None:
    state_dir = tmp_path / "guard"
    (state_dir / "outbox").mkdir(parents=True)
    (state_dir / "outbox" / "event.json").write_text("{}")
    (state_dir / "audit").mkdir()
    (state_dir / "audit" / "instantly-audit.jsonl").write_text("{}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = LocalStack(state_dir, ports=Ports(sandbox=port))
        with pytest.raises(ConfigError, match=f"sandbox port {port}"):
            stack.start()

    assert (state_dir / "outbox" / "event.json").exists()
    assert (state_dir / "audit" / "instantly-audit.jsonl").exists()


def test_the_busy_port_message_names_the_range_of_every_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = Ports.from_base(busy.getsockname()[1]).as_dict()
        with pytest.raises(ConfigError) as refused:
            check_ports(ports)
    assert f"N..N+{len(ports) - 1}" in str(refused.value)


def test_prepare_wipes_only_once_ready(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    with pytest.raises(ConfigError):
        state.prepare(tmp_path, ready=lambda: (_ for _ in ()).throw(ConfigError("busy")))
    assert (tmp_path / "secrets").is_dir()
    state.prepare(tmp_path, ready=lambda: None)
    assert not (tmp_path / "secrets").exists()
