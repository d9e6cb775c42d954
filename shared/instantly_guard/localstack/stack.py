"""`LocalStack`: the sandbox and the five functions, running locally with the local backends.

    sandbox        instantly-guard sandbox --seed demo            (Instantly API v2 stand-in)
    webhook        functions-framework --target receive_webhook   (http)
    audit_export   functions-framework --target export_audit_logs (http)
    key_rotation   functions-framework --target rotate_api_key    (http: Pub/Sub push or CloudEvent)
    reconcile      functions-framework --target reconcile_webhooks (http)
    inventory      functions-framework --target run_inventory      (http)

Each runs in its own process group with GUARD_BACKEND=local and one state directory, so the
outbox, the JSONL audit log, the checkpoint and the secret store all land under it. Starting
wipes the previous stack's state (the sandbox is new, so its keys are gone anyway) and refuses
when another stack runs from the same directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from instantly_guard.errors import ConfigError
from instantly_guard.localstack import state
from instantly_guard.localstack.processes import (
    Child,
    StackError,
    check_ports,
    read_line,
    spawn,
    stop_all,
    wait_http,
)
from instantly_guard.localstack.provision import (
    STORE_CHECK,
    STORE_EXPORTER,
    STORE_RECONCILER,
    STORE_WEBHOOK,
    Provisioned,
    backend_env,
    connect_receiver,
    provision,
)
from instantly_guard.localstack.state import ServiceInfo, StackInfo

DEFAULT_BASE_PORT: Final = 8700
_STRIPPED_PREFIXES = (
    "INSTANTLY_",
    "GUARD_",
    "AUDIT_",
    "WEBHOOK_",
    "ROTATION_",
    "RECONCILE_",
    "INVENTORY_",
)


@dataclass(frozen=True, slots=True)
class Ports:
    sandbox: int = DEFAULT_BASE_PORT
    webhook: int = DEFAULT_BASE_PORT + 1
    export: int = DEFAULT_BASE_PORT + 2
    rotation: int = DEFAULT_BASE_PORT + 3
    reconcile: int = DEFAULT_BASE_PORT + 4
    inventory: int = DEFAULT_BASE_PORT + 5

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(base, base + 1, base + 2, base + 3, base + 4, base + 5)

    def as_dict(self) -> dict[str, int]:
        return {
            "sandbox": self.sandbox,
            "webhook": self.webhook,
            "export": self.export,
            "rotation": self.rotation,
            "reconcile": self.reconcile,
            "inventory": self.inventory,
        }


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str  # the directory under functions/
    target: str
    signature: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)


def find_functions_dir(start: Path | None = None) -> Path:
    """`functions/` of this checkout: under the current directory, or beside `shared/`."""
    candidates = [
        (start or Path.cwd()) / "functions",
        Path(__file__).resolve().parents[3] / "functions",
    ]
    for candidate in candidates:
        if (candidate / "webhook" / "main.py").is_file():
            return candidate.resolve()
    raise ConfigError(
        "cannot find functions/<name>/main.py: run from the repository root (where `make run` runs)"
    )


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without our own settings (a developer's INSTANTLY_API_KEY must
    not leak into a function), plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIPPED_PREFIXES) and not k.endswith("_EMULATOR_HOST")
    }
    env.update({"PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


class LocalStack:
    """Start with `start()`, stop with `stop()` (idempotent; also on a failed start)."""

    def __init__(
        self,
        state_dir: Path,
        ports: Ports | None = None,
        *,
        host: str = "127.0.0.1",
        functions_dir: Path | None = None,
        python: str = sys.executable,
        ready_timeout: float = 90.0,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.ports = ports or Ports()
        self.host = host
        self.functions_dir = functions_dir or find_functions_dir()
        self.python = python
        self.ready_timeout = ready_timeout
        self.children: list[Child] = []
        self.notes: list[str] = []
        self.info: StackInfo | None = None
        self.provisioned: Provisioned | None = None
        self._lock: state.StackLock | None = None

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}/"

    def start(self) -> StackInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        self._lock = state.StackLock(self.state_dir)
        self.notes = state.prepare(
            self.state_dir, ready=lambda: check_ports(self.ports.as_dict(), self.host)
        )
        logs = self.state_dir / "logs"
        repo = self.functions_dir.parent

        sandbox = spawn(
            "sandbox",
            [
                self.python,
                "-m",
                "instantly_guard.cli",
                "sandbox",
                "--host",
                self.host,
                "--port",
                str(self.ports.sandbox),
                "--seed",
                "demo",
            ],
            env=child_env({}),
            cwd=repo,
            log_path=logs / "sandbox.log",
            capture_stdout=True,
        )
        self.children.append(sandbox)
        ready: dict[str, Any] = json.loads(read_line(sandbox, self.ready_timeout))
        api_base, control_url = str(ready["base_url"]), str(ready["control_url"])
        sandbox.url = api_base
        admin = ready["keys"]["admin"]

        from instantly_sandbox.seed import DEMO_POLICY  # dev tooling only; never bundled

        provisioned = provision(
            self.state_dir,
            api_base,
            str(admin["key"]),
            str(admin["id"]),
            self.url(self.ports.webhook),
            check_policy=DEMO_POLICY,
        )
        self.provisioned = provisioned

        shared = backend_env(self.state_dir, api_base)
        specs = (
            FunctionSpec(
                "webhook",
                "receive_webhook",
                "http",
                self.ports.webhook,
                {
                    "INSTANTLY_WEBHOOK_SECRET_FILE": str(provisioned.webhook_secret_file),
                    # No Google front end locally: the peer address is the client's.
                    "WEBHOOK_PROXY_HOPS": "0",
                },
            ),
            FunctionSpec(
                "audit_export",
                "export_audit_logs",
                "http",
                self.ports.export,
                {
                    "AUDIT_API_KEY_SECRET": STORE_EXPORTER,
                    "AUDIT_RUN_CHECK": "true",
                    "AUDIT_CHECK_KEY_SECRET": STORE_CHECK,
                    "AUDIT_CHECK_POLICY": str(provisioned.check_policy),
                },
            ),
            FunctionSpec(
                "key_rotation",
                "rotate_api_key",
                "http",
                self.ports.rotation,
                # The demo rotates minutes after provisioning rotated the same key; a deployment
                # keeps the pacing (half the rotation period, docs/rotation.md).
                {"ROTATION_MIN_INTERVAL": "0s"},
            ),
            FunctionSpec(
                "reconcile",
                "reconcile_webhooks",
                "http",
                self.ports.reconcile,
                {
                    "RECONCILE_API_KEY_SECRET": STORE_RECONCILER,
                    "RECONCILE_WEBHOOK_URLS": self.url(self.ports.webhook),
                    # Ours are the webhooks `connect_receiver` records on the webhook secret
                    # (below, once the receiver answers), read again at every run.
                    "RECONCILE_WEBHOOK_SECRET": STORE_WEBHOOK,
                    "RECONCILE_RESUME": "true",
                    # Local retries are run by hand (the sandbox's control API), not awaited.
                    "RECONCILE_RETRY_GRACE": "0s",
                },
            ),
            FunctionSpec(
                "inventory",
                "run_inventory",
                "http",
                self.ports.inventory,
                # The posture check's read-only key: the same scopes the inventory needs.
                {"INVENTORY_API_KEY_SECRET": STORE_CHECK},
            ),
        )
        started: list[tuple[Child, str]] = []
        for spec in specs:
            child = spawn(
                spec.name,
                [
                    self.python,
                    "-m",
                    "functions_framework",
                    "--target",
                    spec.target,
                    "--source",
                    str(self.functions_dir / spec.name / "main.py"),
                    "--signature-type",
                    spec.signature,
                    "--host",
                    self.host,
                    "--port",
                    str(spec.port),
                ],
                env=child_env({**shared, **spec.env}),
                cwd=repo,
                log_path=logs / f"{spec.name}.log",
            )
            child.url = self.url(spec.port)
            self.children.append(child)
            started.append((child, child.url))
        for child, url in started:
            # functions-framework answers /robots.txt itself (404) without calling the function:
            # a probe of `/` made the webhook log a 405 WARNING at every start.
            wait_http(child, f"{url}robots.txt", self.ready_timeout)
        webhook_id = connect_receiver(
            self.state_dir, api_base, self.url(self.ports.webhook), provisioned.webhook_id
        )

        self.info = StackInfo(
            pid=os.getpid(),
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            state_dir=str(self.state_dir),
            sandbox=ServiceInfo(self.url(self.ports.sandbox), sandbox.pid, str(sandbox.log_path)),
            api_base=api_base,
            control_url=control_url,
            functions={
                child.name: ServiceInfo(url, child.pid, str(child.log_path))
                for child, url in started
            },
            webhook_id=webhook_id,
            secrets=dict(provisioned.secrets),
            check_policy=str(provisioned.check_policy),
        )
        state.write(self.state_dir, self.info)
        return self.info

    def dead_child(self) -> Child | None:
        """A child that exited on its own (the stack is then broken), or None."""
        return next((child for child in self.children if not child.alive()), None)

    def stop(self) -> None:
        """Stop every child (functions first, the sandbox last) and forget the stack."""
        stop_all(list(reversed(self.children)))
        recorded = state.read(self.state_dir)
        if recorded is None or recorded.pid == os.getpid():
            state.remove(self.state_dir)
        self.children = []
        if self._lock is not None:
            self._lock.release()
            self._lock = None


__all__ = ["DEFAULT_BASE_PORT", "LocalStack", "Ports", "StackError", "find_functions_dir"]
