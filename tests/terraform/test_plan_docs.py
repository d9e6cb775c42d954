"""Every tfvars snippet and Terraform command line the docs show, planned (issue 17, item 2).

The convention (docs/terraform-tests.md), for README.md and docs/*.md:

- A fenced ```hcl block whose top level only assigns values (`name = value`, no blocks) is a
  tfvars snippet. It is planned layered on the shipped example, as a reader who copied the
  example to terraform.tfvars and added the snippet would: terraform.tfvars = the example,
  then `-var-file=<snippet>`. Every name it assigns must be a variable of the module. A ```hcl
  block with blocks (a backend, a resource) is configuration, not tfvars, and is not planned.
- A fenced ```sh block is read as a shell session: `export TF_VAR_x=...` / `unset TF_VAR_x`
  change the environment, and each `terraform ... plan|apply` (`-var`, `-var-file`, `-target`
  kept) and each `make deploy` is planned with that environment, on the example as
  terraform.tfvars; a `-var-file` the module does not hold is the reader's own copy of the
  example. A block that exports TF_VAR_ values but runs no such command is planned once
  at its end.

Identical plans (the same snippet or command in two places) run once.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.terraform.offline import ROOT, TF_DIR
from tests.terraform.plan_harness import EXAMPLE, PlanHarness, Result

pytestmark = pytest.mark.terraform

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*=")
BLOCK_START = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\s+\"[^\"]*\")*\s*\{")
KEPT_FLAGS = ("-var", "-var-file", "-target")


@dataclass(frozen=True)
class DocPlan:
    """One plan a doc implies: where it is shown, a tfvars snippet or env + arguments."""

    where: str
    snippet: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str | None, tuple[tuple[str, str], ...], tuple[str, ...]]:
        return (self.snippet, self.env, self.args)


def _is_tfvars(body: str) -> bool:
    lines = [
        line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    top = [line for line in lines if not line[0].isspace()]
    if not top or any(BLOCK_START.match(line) for line in top):
        return False
    return any(ASSIGNMENT.match(line) for line in top)


def _commands(body: str) -> Iterator[list[str]]:
    """The shell block's commands as words, continuation lines joined, comments dropped."""
    for line in body.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words:
            yield words


def _terraform_args(words: list[str]) -> tuple[str, ...] | None:
    """The -var / -var-file / -target arguments of a `terraform plan|apply`, else None."""
    if not words or words[0] != "terraform":
        return None
    rest = [w for w in words[1:] if not w.startswith("-chdir")]
    if not rest or rest[0] not in ("plan", "apply"):
        return None
    kept: list[str] = []
    it = iter(rest[1:])
    for word in it:
        flag = word.split("=", 1)[0]
        if flag in KEPT_FLAGS:
            kept.append(word if "=" in word else f"{word}={next(it, '')}")
    return tuple(kept)


def _shell_plans(where: str, body: str) -> Iterator[DocPlan]:
    env: dict[str, str] = {}
    exported = planned = False
    for words in _commands(body):
        if words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                if name.startswith("TF_VAR_"):
                    env[name] = value
                    exported = True
        elif words[0] == "unset":
            for name in words[1:]:
                env.pop(name, None)
        elif words[:2] == ["make", "deploy"] or (args := _terraform_args(words)) is not None:
            chosen = () if words[0] == "make" else args
            planned = True
            yield DocPlan(where, env=tuple(sorted(env.items())), args=chosen)
    if exported and not planned:
        yield DocPlan(where, env=tuple(sorted(env.items())))


def doc_plans() -> list[DocPlan]:
    plans: dict[tuple[object, ...], DocPlan] = {}
    for doc in DOCS:
        text = doc.read_text()
        for fence in FENCE.finditer(text):
            language, body = fence.group(1), fence.group(2)
            where = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, fence.start()) + 1}"
            found: list[DocPlan] = []
            if language in ("hcl", "terraform") and _is_tfvars(body):
                found.append(DocPlan(where, snippet=body))
            elif language in ("sh", "bash", "shell", "console"):
                found.extend(_shell_plans(where, body))
            for plan in found:
                plans.setdefault(plan.key, plan)
    return list(plans.values())


PLANS = doc_plans()
DECLARED = {
    name
    for path in TF_DIR.glob("*.tf")
    for name in re.findall(r'^variable "(\w+)"', path.read_text(), re.M)
}


def _run(harness: PlanHarness, plan: DocPlan) -> Result:
    extra = {"terraform.tfvars": EXAMPLE.read_text()}
    args = list(plan.args)
    if plan.snippet is not None:
        extra["snippet.tfvars"] = plan.snippet
        args.insert(0, "-var-file=snippet.tfvars")
    workdir = harness.workspace(extra_files=extra)
    # A bundle_dir of the reader's own (the previous release's dist/, kept for a rollback) stands
    # for the placeholder bundles the workspace holds in ../dist.
    args = ["-var=bundle_dir=../dist" if a.startswith("-var=bundle_dir=") else a for a in args]
    for arg in args:
        # A -var-file the reader makes (prod.tfvars) stands for their copy of the example.
        name = arg.partition("=")[2] if arg.startswith("-var-file=") else ""
        target = (workdir / name).resolve()
        if name and target.is_relative_to(workdir.parent) and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(EXAMPLE.read_text())
    return harness.plan(workdir, args, env=dict(plan.env))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanHarness]:
    planner = PlanHarness(tmp_path_factory.mktemp("tfplan-docs"))
    yield planner
    planner.close()


# A runbook line with a tfvars file of the reader's own (checks the substitution above).
READERS_FILE = DocPlan("test", args=("-var-file=prod.tfvars", "-var=python_runtime=python312"))


@pytest.fixture(scope="module")
def results(harness: PlanHarness) -> dict[str, Result]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            plan.where + repr(plan.key): pool.submit(_run, harness, plan)
            for plan in [*PLANS, READERS_FILE]
        }
        return {name: future.result() for name, future in futures.items()}


def test_a_var_file_of_the_readers_own_is_their_copy_of_the_example(
    results: dict[str, Result],
) -> None:
    result = results[READERS_FILE.where + repr(READERS_FILE.key)]
    assert result.returncode == 0, result.explain()
    assert "Failed to read variables file" not in result.output


def test_the_docs_show_plans_to_check() -> None:
    """The README's deploy steps at least: a parser that finds nothing would pass vacuously."""
    assert any(plan.env for plan in PLANS), [plan.where for plan in PLANS]


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: plan.where)
def test_what_the_docs_show_plans_cleanly(results: dict[str, Result], plan: DocPlan) -> None:
    result = results[plan.where + repr(plan.key)]
    assert result.returncode == 0, f"{plan.where}: {result.explain()}"
    assert not result.errors, f"{plan.where}: {result.explain()}"


@pytest.mark.parametrize(
    "plan", [p for p in PLANS if p.snippet is not None], ids=lambda plan: plan.where
)
def test_tfvars_snippets_assign_only_module_variables(plan: DocPlan) -> None:
    assert plan.snippet is not None
    names = {m.group(1) for line in plan.snippet.splitlines() if (m := ASSIGNMENT.match(line))}
    assert names <= DECLARED, (
        f"{plan.where}: not variables of terraform/: {sorted(names - DECLARED)}"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('reconcile = {\n  resume = true\n}\nlabels = { team = "x" }\n', True),
        ('terraform {\n  backend "gcs" {\n    bucket = "b"\n  }\n}\n', False),
        ('resource "x" "y" {\n  a = 1\n}\n', False),
        ("# only a comment\n", False),
    ],
)
def test_tfvars_snippets_are_told_from_configuration(body: str, expected: bool) -> None:
    assert _is_tfvars(body) is expected


def test_a_shell_session_is_followed_through_export_and_unset() -> None:
    body = (
        'export TF_VAR_bootstrap_secret_values=\'{"admin":"a"}\'\n'
        "make deploy   # first apply\n"
        "unset TF_VAR_bootstrap_secret_values\n"
        "terraform -chdir=terraform plan -var 'python_runtime=python312' \\\n  -target=google_service_account.webhook\n"
    )
    first, second = _shell_plans("x", body)
    assert first.env == (("TF_VAR_bootstrap_secret_values", '{"admin":"a"}'),)
    assert first.args == ()
    assert second.env == ()
    assert second.args == (
        "-var=python_runtime=python312",
        "-target=google_service_account.webhook",
    )


def test_every_doc_is_read() -> None:
    assert Path(ROOT / "README.md") in DOCS
