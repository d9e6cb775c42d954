"""Every exit code the CLI returns is in the README's table (a user reads it there)."""

from __future__ import annotations

import re
from pathlib import Path

from instantly_guard.cli import export, output

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_exit_code_is_in_the_readme_table() -> None:
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", README.read_text(), re.M)}
    codes = {
        value
        for module in (output, export)
        for name, value in vars(module).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert 130 in codes
    assert codes <= documented, sorted(codes - documented)
