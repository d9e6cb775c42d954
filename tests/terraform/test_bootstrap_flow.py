"""The README's bootstrap flow, evaluated by the real Terraform binary, offline.

The flow: one apply with `TF_VAR_bootstrap_secret_values` set seeds the admin key and the webhook
secret; the variable is then unset while `bootstrap_secret_versions` keeps its entries for weeks
(until the first rotation); every plan in between must still evaluate the bootstrap version's
`secret_data_wo`, because the provider requires exactly one of `secret_data` / `secret_data_wo`.

test_plan.py plans the whole module, each bootstrap step included, against stand-in providers;
this module looks closer at the values, which a plan never shows (write-only), evaluating them
without any provider: the harness holds `variables.tf` as it is (except that the values
variable is not ephemeral, so that the console may print what it evaluates) and the locals the
bootstrap resource uses, and evaluates that resource's own `for_each` and `secret_data_wo`, read
from secrets.tf, for every instance.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.terraform.offline import TF_DIR, expression, label, load, terraform

pytestmark = pytest.mark.terraform

SEEDED = {"admin": 1, "webhook-secret": 1}
VALUES = {"admin": "admin-key-made-by-hand", "webhook-secret": "w" * 40}
PAYLOAD_LIMIT = 65536  # Secret Manager: at most 64 KiB per version


def _bootstrap_resource() -> dict[str, Any]:
    for item in load(TF_DIR / "secrets.tf").get("resource", []):
        for type_, named in item.items():
            for name, body in named.items():
                if (label(type_), label(name)) == (
                    "google_secret_manager_secret_version",
                    "bootstrap",
                ):
                    assert isinstance(body, dict)
                    return body
    raise AssertionError("no google_secret_manager_secret_version.bootstrap in secrets.tf")


def _locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        for block in load(path).get("locals", []):
            merged.update({k: v for k, v in block.items() if not k.startswith("__")})
    return merged


def _needed_locals(source: str, defined: dict[str, Any]) -> dict[str, str]:
    """The locals `source` refers to, transitively, as HCL source."""
    needed: dict[str, str] = {}
    pending = re.findall(r"\blocal\.(\w+)", source)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        assert name in defined, f"local.{name} is not defined in terraform/"
        needed[name] = expression(defined[name])
        pending += re.findall(r"\blocal\.(\w+)", needed[name])
    return needed


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A provider-free module (variables + the locals used) and the console expression."""
    version = terraform("version", "-json")
    found = tuple(
        int(part) for part in json.loads(version.stdout)["terraform_version"].split(".")[:2]
    )
    if found < (1, 11):
        pytest.skip(
            f"terraform {found} on the PATH; the module needs >= 1.11 (ephemeral, write-only)"
        )
    directory = tmp_path_factory.mktemp("bootstrap-harness")
    variables = (TF_DIR / "variables.tf").read_text()
    start = variables.index('variable "bootstrap_secret_values"')
    block_end = variables.index("\n}\n", start)
    block = variables[start:block_end]
    assert re.search(r"^\s+ephemeral\s+= true$", block, re.M), "the values must stay ephemeral"
    block = re.sub(r"^[ \t]+ephemeral[ \t]+= true$", "", block, flags=re.M)
    (directory / "variables.tf").write_text(variables[:start] + block + variables[block_end:])

    body = _bootstrap_resource()
    for_each = expression(body["for_each"])
    value = expression(body["secret_data_wo"])
    locals_ = _needed_locals(value, _locals())
    lines = [f"  {name} = {source}" for name, source in locals_.items()]
    (directory / "harness.tf").write_text("locals {\n" + "\n".join(lines) + "\n}\n")
    instance = re.sub(r"\beach\.key\b", "k", re.sub(r"\beach\.value\b", "v", value))
    console = f"nonsensitive(jsonencode({{ for k, v in {for_each} : k => {instance} }}))"
    init = terraform("init", "-input=false", "-no-color", cwd=directory)
    assert init.returncode == 0, init.stderr
    return directory, console


def _run(
    harness: tuple[Path, str],
    command: str,
    versions: dict[str, int],
    values: dict[str, str] | None,
) -> subprocess.CompletedProcess[str]:
    """`terraform console` (with the harness expression) or `plan`, as a user would run them."""
    directory, console = harness
    env = {"TF_VAR_bootstrap_secret_values": json.dumps(values)} if values is not None else {}
    return terraform(
        command,
        "-input=false",
        "-no-color",
        "-var",
        "project_id=my-project-id",
        "-var",
        f"bootstrap_secret_versions={json.dumps(versions)}",
        cwd=directory,
        env=env,
        input_=console if command == "console" else None,
    )


def _evaluate(
    harness: tuple[Path, str], versions: dict[str, int], values: dict[str, str] | None
) -> dict[str, str]:
    result = _run(harness, "console", versions, values)
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr, result.stderr
    evaluated: dict[str, str] = json.loads(json.loads(result.stdout.strip().splitlines()[-1]))
    return evaluated


def _plan(
    harness: tuple[Path, str], versions: dict[str, int], values: dict[str, str]
) -> tuple[int, str]:
    result = _run(harness, "plan", versions, values)
    return result.returncode, result.stdout + result.stderr


def test_the_seeding_apply_sends_exactly_the_supplied_values(harness: tuple[Path, str]) -> None:
    assert _evaluate(harness, SEEDED, VALUES) == VALUES


def test_plans_stay_valid_once_the_values_are_unset_and_the_entries_stay(
    harness: tuple[Path, str],
) -> None:
    evaluated = _evaluate(harness, SEEDED, None)
    assert set(evaluated) == set(SEEDED)
    for name, stand_in in evaluated.items():
        # What the provider gets while the version number stands (and ignores): a value Secret
        # Manager would refuse, should a new entry or a bumped number ever send it.
        assert len(stand_in.encode()) > PAYLOAD_LIMIT, name
        assert stand_in not in VALUES.values()


def test_no_entries_means_no_bootstrap_versions(harness: tuple[Path, str]) -> None:
    assert _evaluate(harness, {}, None) == {}


@pytest.mark.parametrize(
    "values",
    [
        {"admin": VALUES["admin"]},  # one value forgotten: it would seed the stand-in
        {**VALUES, "crm-sync": "x"},  # a value for an entry that does not exist
        {"admin": VALUES["admin"], "webhook-secret": ""},  # an empty secret
    ],
    ids=["missing", "extra", "empty"],
)
def test_values_must_cover_exactly_the_entries(
    harness: tuple[Path, str], values: dict[str, str]
) -> None:
    code, output = _plan(harness, SEEDED, values)
    assert code != 0
    assert "Invalid value for variable" in output
    assert "bootstrap_secret_values" in output
    for value in values.values():
        if len(value) > 1:
            assert value not in output  # an ephemeral, sensitive value never shows


def test_complete_values_plan_cleanly(harness: tuple[Path, str]) -> None:
    code, output = _plan(harness, SEEDED, VALUES)
    assert code == 0, output
    assert "No changes" in output
