"""`terraform validate` and `terraform plan` of a module against the stand-in providers.

A `PlanHarness` owns a scratch folder: a CLI configuration whose `dev_overrides` map
hashicorp/google, google-beta, archive and time to launch scripts that run
`tests.terraform.standin_provider`, one TLS certificate every launch serves, and one working copy
per plan (the module's files, the example, placeholder bundles in `dist/`), so nothing is ever
written into terraform/ and plans can run side by side. No `terraform init`, no registry, no
network. docs/terraform-tests.md says what the stand-ins model.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.terraform.offline import ROOT, TERRAFORM, TF_DIR
from tests.terraform.standin_provider.host import launcher_script
from tests.terraform.standin_provider.plugin import SOURCES, write_certificate

EXAMPLE = TF_DIR / "terraform.tfvars.example"
FUNCTIONS_DIR = ROOT / "functions"
PLAN_TIMEOUT = 240
_PLAN_LINE = re.compile(r"^Plan: (\d+) to add, (\d+) to change, (\d+) to destroy\.", re.MULTILINE)


def require_terraform() -> str:
    """The terraform binary; in CI (CI=true) its absence fails the test, elsewhere skips it."""
    if TERRAFORM is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("terraform is not on the PATH: CI must run the plan tests")
        pytest.skip("terraform is not on the PATH")
    return TERRAFORM


@dataclass(frozen=True)
class Result:
    """What one terraform command did: exit code, combined output, resources it would add."""

    args: tuple[str, ...]
    returncode: int
    output: str

    @property
    def to_add(self) -> int | None:
        found = _PLAN_LINE.search(self.output)
        return int(found.group(1)) if found else None

    @property
    def errors(self) -> list[str]:
        """The `Error: ...` summaries Terraform printed."""
        return re.findall(r"^Error: (.+)$", self.output, re.MULTILINE)

    def explain(self) -> str:
        return f"terraform {shlex.join(self.args)} -> exit {self.returncode}\n{self.output[-6000:]}"


class PlanHarness:
    """Working copies of a module and the Terraform binary run against the stand-in providers."""

    def __init__(self, base: Path, *, host: bool = True) -> None:
        """`host=False`: each launch is its own Python process (plugin.serve), as a real provider."""
        self.binary = require_terraform()
        self.base = base
        self._counter = itertools.count()
        self._lock = threading.Lock()
        bin_dir = base / "providers"
        tls_dir = base / "tls"
        host_dir = base / "host"
        for folder in (bin_dir, tls_dir, host_dir):
            folder.mkdir(parents=True)
        write_certificate(tls_dir)
        self.host: subprocess.Popen[str] | None = None
        overrides = []
        for provider in SOURCES:
            script = bin_dir / f"terraform-provider-{provider}"
            script.write_text(
                launcher_script(provider, host_dir)
                if host
                else "#!/bin/sh\n"
                f"export PYTHONPATH={shlex.quote(str(ROOT))} TF_STANDIN_TLS_DIR={shlex.quote(str(tls_dir))}\n"
                f"exec {shlex.quote(sys.executable)} -m tests.terraform.standin_provider {provider}\n"
            )
            script.chmod(0o755)
            overrides.append(f'    "hashicorp/{provider}" = "{bin_dir}"')
        self.cli_config = base / "terraform.tfrc"
        self.cli_config.write_text(
            "provider_installation {\n  dev_overrides {\n"
            + "\n".join(overrides)
            + "\n  }\n  direct {}\n}\n"
        )
        if host:
            self._start_host(host_dir, tls_dir)

    def _start_host(self, host_dir: Path, tls_dir: Path) -> None:
        # One host process serves every provider instance Terraform starts (host.py says why).
        self.host = subprocess.Popen(
            [sys.executable, "-m", "tests.terraform.standin_provider.host", str(host_dir)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_STANDIN_TLS_DIR": str(tls_dir)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.host.stdout is not None
        ready = self.host.stdout.readline()
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError(f"the stand-in provider host did not start: {ready!r}")

    def close(self) -> None:
        """Stop the provider host (closing its stdin ends it)."""
        if self.host is None:
            return
        if self.host.stdin is not None:
            self.host.stdin.close()
        try:
            self.host.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.host.kill()
            self.host.wait()
        if self.host.stdout is not None:
            self.host.stdout.close()

    def workspace(
        self,
        module: Path = TF_DIR,
        extra_files: Mapping[str, str] | None = None,
        *,
        bundles: bool = True,
    ) -> Path:
        """A fresh copy of `module` (its .tf files and the example) at <copy>/terraform.

        `bundles` puts a placeholder zip per function in <copy>/dist, where the module's default
        bundle_dir (../dist) looks: the plan hashes them, their content does not matter.
        """
        with self._lock:
            copy = self.base / f"work-{next(self._counter)}"
        target = copy / "terraform"
        target.mkdir(parents=True)
        for path in sorted(module.glob("*.tf")) + sorted(module.glob("*.tfvars.example")):
            shutil.copy2(path, target / path.name)
        for name, text in (extra_files or {}).items():
            (target / name).write_text(text)
        if bundles:
            (copy / "dist").mkdir()
            for function in sorted(
                p.name for p in FUNCTIONS_DIR.iterdir() if (p / "main.py").exists()
            ):
                (copy / "dist" / f"{function}.zip").write_bytes(
                    b"placeholder bundle " + function.encode()
                )
        return target

    def run(self, workdir: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
        """`terraform <args>` in `workdir`, offline, TF_VAR_* of the caller's environment removed."""
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TF_VAR_", "TF_CLI_ARGS", "TF_LOG"))
        }
        full_env = {
            **clean,
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "TF_DATA_DIR": str(workdir.parent / ".terraform-data"),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            **(env or {}),
        }
        done = subprocess.run(
            [self.binary, *args],
            cwd=workdir,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=PLAN_TIMEOUT,
        )
        return Result(tuple(args), done.returncode, done.stdout + done.stderr)

    def validate(self, workdir: Path) -> Result:
        return self.run(workdir, "validate", "-no-color")

    def plan(
        self, workdir: Path, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> Result:
        """`terraform plan -refresh=false` (no state: every resource is a create)."""
        return self.run(
            workdir,
            "plan",
            "-refresh=false",
            "-input=false",
            "-lock=false",
            "-no-color",
            *args,
            env=env,
        )
