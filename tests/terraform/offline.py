"""Helpers for tests that run the Terraform binary on the PATH, offline, or read HCL with python-hcl2."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"
TERRAFORM = shutil.which("terraform")
# As in the Makefile: an empty CLI configuration (a TF_CLI_CONFIG_FILE naming a missing file only
# adds a warning; provider mirrors are not needed without providers) and no checkpoint call.
TERRAFORM_ENV = {"TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}


def terraform(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, input_: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the Terraform binary on the PATH offline (skips the test when there is none)."""
    if TERRAFORM is None:
        pytest.skip("terraform is not on the PATH")
    return subprocess.run(
        [TERRAFORM, *args],
        cwd=cwd,
        env={**os.environ, **TERRAFORM_ENV, **(env or {})},
        input=input_,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


def label(value: str) -> str:
    """python-hcl2 keeps the quotes of labels and the ${} of bare references; drop them."""
    return value.strip('"').removeprefix("${").removesuffix("}")


def expression(value: Any) -> str:
    """HCL source for an attribute value as python-hcl2 gives it (literal or `${expr}`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    assert isinstance(value, str), f"not an expression python-hcl2 gives as text: {value!r}"
    if value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    assert value.startswith('"'), value
    return value


@dataclass(frozen=True)
class HclBlock:
    """One resource or data block as python-hcl2 gives it (labels unquoted, body as parsed)."""

    kind: str  # resource | data
    type: str
    name: str
    body: dict[str, Any]
    file: str

    @property
    def address(self) -> str:
        return f"{'data.' if self.kind == 'data' else ''}{self.type}.{self.name}"


def hcl_blocks(parsed: dict[str, Any], file: str) -> Iterator[HclBlock]:
    """The resource and data blocks of one parsed .tf file."""
    for kind in ("resource", "data"):
        for item in parsed.get(kind, []):
            for type_, named in item.items():
                for name, body in named.items():
                    yield HclBlock(kind, label(type_), label(name), body, file)


def strings(value: Any) -> Iterator[str]:
    """Every string in a parsed value: the expressions and literals a reference can hide in."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
