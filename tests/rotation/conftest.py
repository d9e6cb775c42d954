"""Fixtures for the rotation tests.

`_no_secret_in_logs` (session, autouse) captures every log record emitted while these tests run,
*before* redaction (message with its arguments, structured fields, traceback), and at the end
asserts that none contains any key or secret the tests created: sandbox key strings (every
key the sandbox ever minted, deleted ones included) and every value ever stored in a secret
store. Redaction is the safety net; this proves the rotation code never needs it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/ (for the shared stand-ins, tests/standins/secret_manager.py) and this directory (for
# rotation_helpers) on sys.path, whichever way pytest resolved this conftest's module name.
for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from rotation_helpers import FakeClock, FaultyStore, World, make_clients  # noqa: E402

from instantly_guard.rotation.engine import Rotator  # noqa: E402
from instantly_guard.secrets.gcp import GcpSecretStore  # noqa: E402
from instantly_guard.secrets.local import LocalSecretStore  # noqa: E402
from standins.secret_manager import SecretManagerStandIn  # noqa: E402

_SECRETS: set[str] = set()


class _RawCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("instantly_sandbox"):
            return  # the fake Instantly itself, not code under test
        parts = [record.name, record.getMessage()]
        fields = getattr(record, "fields", None)
        if fields is not None:
            parts.append(json.dumps(fields, default=str))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        self.texts.append("\n".join(parts))


def remember_secret(value: str) -> None:
    if len(value) >= 8:
        _SECRETS.add(value)


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_logs() -> Iterator[_RawCapture]:
    capture = _RawCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(old_level)
    leaks = [t for t in capture.texts if any(s in t for s in _SECRETS)]
    assert not leaks, f"{len(leaks)} log records contain key or secret material"


def _harvest_sandbox(sb: Any) -> None:
    """Remember every key string the sandbox mints from now on, and those it has."""
    ws = sb.state
    for record in ws.api_keys.values():
        remember_secret(record.key)
    create = ws.create_key

    def recording_create(*args: Any, **kwargs: Any) -> Any:
        record = create(*args, **kwargs)
        remember_secret(record.key)
        return record

    ws.create_key = recording_create


def _remember_payload(text: str) -> None:
    """A stored value: the whole text, and each string of a webhook-secret JSON payload."""
    text = text.strip()
    remember_secret(text)
    try:
        data = json.loads(text)
    except ValueError:
        return
    if isinstance(data, dict):
        for name in ("current", "previous"):
            if isinstance(data.get(name), str):
                remember_secret(data[name])


def _harvest_local(root: Path) -> None:
    for path in root.glob("*/versions/*"):
        if path.is_file():
            _remember_payload(path.read_text(encoding="utf-8"))


def _harvest_standin(standin: SecretManagerStandIn) -> None:
    for secret in standin._secrets.values():
        for version in secret.versions:
            _remember_payload(version.data.decode("utf-8", "replace"))


@pytest.fixture
def rotation_sandbox(sandbox_factory: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    # Parametrized indirectly with an `ApiVariant` (tests/api_variants.py): its sandbox options.
    variant = getattr(request, "param", None)
    sb = sandbox_factory(seed="empty", timeout_hold_s=1.0, **getattr(variant, "sandbox", {}))
    _harvest_sandbox(sb)
    return sb


@pytest.fixture
def sm_standin() -> Iterator[SecretManagerStandIn]:
    with SecretManagerStandIn() as standin:
        yield standin
        _harvest_standin(standin)


@pytest.fixture(params=["local", "gcp"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Any]]:
    """`make_store("local"|"gcp")` -> a fresh SecretStore (the gcp one on a gRPC stand-in)."""
    standins: list[SecretManagerStandIn] = []
    roots: list[Path] = []

    def make(kind: str) -> Any:
        if kind == "local":
            root = tmp_path / f"secrets-{len(roots)}"
            roots.append(root)
            return LocalSecretStore(root)
        standin = SecretManagerStandIn().start()
        standins.append(standin)
        return GcpSecretStore("test-project", client=standin.client())

    yield make
    for root in roots:
        _harvest_local(root)
    for standin in standins:
        _harvest_standin(standin)
        standin.stop()


@pytest.fixture
def world_factory(rotation_sandbox: Any, make_store: Callable[[str], Any]) -> Callable[..., World]:
    def make(kind: str = "local", *, inner: Any = None, **rotator_options: Any) -> World:
        clock = FakeClock()
        store = FaultyStore(inner if inner is not None else make_store(kind))
        clients = make_clients(rotation_sandbox.base_url)
        rotator = Rotator(
            store,
            clients,
            clock=clock,
            sleep=lambda _s: None,
            **rotator_options,
        )
        world = World(rotation_sandbox, store, clock, clients, rotator)
        world.bootstrap_admin()
        return world

    return make


@pytest.fixture
def world(world_factory: Callable[..., World], backend: str) -> World:
    """A world on each backend (local files, and Secret Manager through its stand-in)."""
    return world_factory(backend)


@pytest.fixture
def local_world(world_factory: Callable[..., World]) -> World:
    return world_factory("local")


@pytest.fixture
def cli(rotation_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`instantly-guard ARGS...` in process, on the local backend against the rotation sandbox;
    `stdin=` feeds the command's standard input. `.store` is the local store it uses."""
    monkeypatch.setenv("GUARD_BACKEND", "local")
    monkeypatch.setenv("GUARD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("INSTANTLY_API_BASE", rotation_sandbox.base_url)

    def run(*argv: str, stdin: str = "") -> int:
        import io
        import sys

        from instantly_guard.cli import main

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return main(list(argv))

    from instantly_guard.secrets.local import LocalSecretStore

    run.store = LocalSecretStore(tmp_path / "state" / "secrets")  # type: ignore[attr-defined]
    return run
