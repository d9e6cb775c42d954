"""`.pre-commit-hooks.yaml` parses, and its entry is our console script with arguments we accept."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import yaml

from instantly_guard.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_the_hook_points_at_a_real_entry() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    [hook] = [h for h in hooks if h["id"] == "instantly-guard-check"]
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["language"] == "python"  # pre-commit installs this package, then runs the entry
    assert hook["pass_filenames"] is False  # the check lists what git tracks itself
    program, *argv = shlex.split(hook["entry"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert program in scripts
    assert scripts[program] == "instantly_guard.cli:main"
    args = build_parser().parse_args(argv)  # raises SystemExit(2) on an argument we do not take
    assert args.command == "check"
    assert args.no_workspace is True
