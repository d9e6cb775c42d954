"""`terraform fmt -check` over terraform/, when a Terraform binary is on the PATH (`make lint` runs it too).

`fmt` needs no provider and no network: it runs wherever the binary exists, and is skipped (with
the reason) where it does not, as on a clone without Terraform.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.terraform

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = shutil.which("terraform")
# As in the Makefile: an empty CLI configuration (a TF_CLI_CONFIG_FILE naming a missing file only
# adds a warning) and no checkpoint call to HashiCorp.
TERRAFORM_ENV = {"TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}


def terraform(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the Terraform binary on the PATH offline (skips the test when there is none)."""
    if TERRAFORM is None:
        pytest.skip("terraform is not on the PATH")
    return subprocess.run(
        [TERRAFORM, *args],
        cwd=cwd,
        env={**os.environ, **TERRAFORM_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_terraform_files_are_formatted() -> None:
    result = terraform("-chdir=terraform", "fmt", "-check", "-recursive", "-diff", "-no-color")
    assert result.returncode == 0, f"run `terraform -chdir=terraform fmt`:\n{result.stdout}"
    assert "Warning" not in result.stderr, result.stderr


def test_make_lint_runs_terraform_fmt_check_or_says_it_skips() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = re.search(r"^lint:.*?(?=^\S)", makefile, re.M | re.S)
    assert lint, "no lint target"
    assert "terraform -chdir=terraform fmt -check -recursive" in lint.group(0)
    assert "skipping terraform fmt -check" in lint.group(0)
    assert "TF_CLI_CONFIG_FILE=/dev/null" in makefile
