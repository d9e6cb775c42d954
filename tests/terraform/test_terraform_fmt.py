"""`terraform fmt -check` over terraform/, when a Terraform binary is on the PATH (`make lint` runs it too).

`fmt` needs no provider and no network: it runs wherever the binary exists, and is skipped (with
the reason) where it does not, as on a clone without Terraform.
"""

from __future__ import annotations

import re

import pytest
from tests.terraform.offline import ROOT, terraform

pytestmark = pytest.mark.terraform


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
