"""terraform/ planned by the real Terraform binary against the stand-in providers.

`terraform validate` and `terraform plan -refresh=false` run on a working copy of the module
(plan_harness.py), with providers that serve the vendored schemas over the plugin protocol
(standin_provider/). Without a terraform binary these tests skip; in CI (CI=true) they fail.

Positive plans: the example exactly as shipped; only `project_id`; every option on
(plan_cases/all_options.tfvars on the example); each step of the bootstrap flow (values set,
values unset, versions removed, a value replaced). Negative plans prove the harness fails where a
real plan fails. The plans of each group run side by side (a thread pool), so the module costs
a few plans' time, not the sum. Tfvars snippets and command lines in the docs: test_plan_docs.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.terraform.plan_harness import EXAMPLE, PlanHarness, Result

pytestmark = pytest.mark.terraform

CASES_DIR = Path(__file__).parent / "plan_cases"
BOOTSTRAP_VALUES = json.dumps({"admin": "admin-key-made-by-hand", "webhook-secret": "w" * 44})
WORKERS = max(2, min(4, os.cpu_count() or 2))


def run_all(jobs: dict[str, Callable[[], Result]]) -> dict[str, Result]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanHarness]:
    planner = PlanHarness(tmp_path_factory.mktemp("tfplan"))
    yield planner
    planner.close()


def _example_plan(
    harness: PlanHarness, *extra: str, env: dict[str, str] | None = None
) -> Callable[[], Result]:
    def job() -> Result:
        workdir = harness.workspace()
        return harness.plan(workdir, [f"-var-file={EXAMPLE.name}", *extra], env=env)

    return job


def _validate(harness: PlanHarness) -> Result:
    return harness.validate(harness.workspace())


def _planned_values(harness: PlanHarness) -> Result:
    """The example's first (seeding) apply planned to a file and shown as JSON."""
    workdir = harness.workspace()
    env = {"TF_VAR_bootstrap_secret_values": BOOTSTRAP_VALUES}
    planned = harness.plan(workdir, [f"-var-file={EXAMPLE.name}", "-out=seed.tfplan"], env=env)
    if planned.returncode != 0:
        return planned
    return harness.run(workdir, "show", "-json", "seed.tfplan")


@pytest.fixture(scope="module")
def positive(harness: PlanHarness) -> dict[str, Result]:
    return run_all(
        {
            "validate": lambda: _validate(harness),
            "example as shipped": _example_plan(harness),
            "only project_id": lambda: harness.plan(
                harness.workspace(), ["-var=project_id=my-project-id"]
            ),
            "every option on": _example_plan(
                harness, f"-var-file={CASES_DIR / 'all_options.tfvars'}"
            ),
            # The documented bootstrap flow (docs/deploy.md): the seeding apply, the weeks in which
            # the values are unset but the versions stay (the example as shipped), then the entries
            # removed; and a value replaced later (a bumped number, every value passed again).
            "bootstrap: values set": _example_plan(
                harness, env={"TF_VAR_bootstrap_secret_values": BOOTSTRAP_VALUES}
            ),
            "bootstrap: versions removed": _example_plan(
                harness, "-var=bootstrap_secret_versions={}"
            ),
            "bootstrap: value replaced": _example_plan(
                harness,
                '-var=bootstrap_secret_versions={"admin"=2,"webhook-secret"=1}',
                env={"TF_VAR_bootstrap_secret_values": BOOTSTRAP_VALUES},
            ),
            "planned values": lambda: _planned_values(harness),
        }
    )


def _added(result: Result) -> int:
    assert result.to_add is not None, result.explain()
    return result.to_add


@pytest.mark.parametrize(
    "case",
    [
        "validate",
        "example as shipped",
        "only project_id",
        "every option on",
        "bootstrap: values set",
        "bootstrap: versions removed",
        "bootstrap: value replaced",
    ],
)
def test_module_plans_cleanly(positive: dict[str, Result], case: str) -> None:
    result = positive[case]
    assert result.returncode == 0, result.explain()
    assert not result.errors, result.explain()
    if case != "validate":
        assert _added(result) > 50, result.explain()


def test_seeding_apply_adds_the_bootstrap_versions_and_removing_them_drops_them(
    positive: dict[str, Result],
) -> None:
    seeded = _added(positive["bootstrap: values set"])
    kept = _added(positive["example as shipped"])  # the example keeps the versions, values unset
    removed = _added(positive["bootstrap: versions removed"])
    assert seeded == kept == removed + 2, "the example seeds exactly admin and webhook-secret"


def test_every_option_on_plans_more_than_the_example(positive: dict[str, Result]) -> None:
    options, example = _added(positive["every option on"]), _added(positive["example as shipped"])
    assert options > example, "extra managed keys, readers and channels add resources"


def _resources(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {change["address"]: change for change in shown["resource_changes"]}


def test_planned_state_follows_the_sdk(positive: dict[str, Result]) -> None:
    """Write-only values never stored, labels merged with the provider's, computed unknown."""
    result = positive["planned values"]
    assert result.returncode == 0, result.explain()
    changes = _resources(json.loads(result.output[result.output.index("{") :]))
    seeded = changes['google_secret_manager_secret_version.bootstrap["admin"]']["change"]
    assert seeded["after"]["secret_data_wo"] is None
    assert "admin-key-made-by-hand" not in result.output
    assert seeded["after"]["secret_data_wo_version"] == 1
    assert seeded["after_unknown"]["name"] is True
    assert seeded["after"]["enabled"] is True, "schema default for a null optional"

    secrets = [c for a, c in changes.items() if a.startswith("google_secret_manager_secret.")]
    assert secrets
    for secret in secrets:
        after = secret["change"]["after"]
        assert after["project"] == "my-project-id", "project from the provider configuration"
        assert after["effective_labels"]["goog-terraform-provisioned"] == "true"
        assert after["effective_labels"]["team"] == "growth-ops", "provider default_labels"
        assert secret["change"]["after_unknown"]["id"] is True


# --- negative plans ------------------------------------------------------------------------------

PROVIDERS = """
terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}
provider "google" {
  project = "my-project-id"
  region  = "europe-west1"
}
"""

NEGATIVE: dict[str, tuple[str, str]] = {
    # name: (configuration beside PROVIDERS, text Terraform's error must contain)
    "attribute that does not exist": (
        'resource "google_pubsub_topic" "t" { name = "t" }\n'
        'output "x" { value = google_pubsub_topic.t.no_such_attribute }\n',
        'This object has no argument, nested block, or exported attribute named "no_such_attribute"',
    ),
    "type mismatch": (
        'resource "google_pubsub_topic" "t" {\n  name   = "t"\n  labels = ["not", "a", "map"]\n}\n',
        "Incorrect attribute value type",
    ),
    "for_each over values known only after apply": (
        'resource "google_pubsub_topic" "t" { name = "t" }\n'
        'resource "google_pubsub_subscription" "s" {\n'
        "  for_each = toset([google_pubsub_topic.t.id])\n"
        "  name     = each.key\n  topic    = each.key\n}\n",
        "Invalid for_each argument",
    ),
    "too many blocks": (
        'resource "google_secret_manager_secret" "s" {\n  secret_id = "s"\n'
        "  replication {\n    auto {}\n  }\n  replication {\n    auto {}\n  }\n}\n",
        "Too many replication blocks",
    ),
    "required argument null at plan time": (
        'variable "name" {\n  type    = string\n  default = null\n}\n'
        'resource "google_pubsub_topic" "t" { name = var.name }\n',
        'The argument "name" is required',
    ),
    "exactly one of: neither given": (
        'resource "google_secret_manager_secret_version" "v" { secret = "s" }\n',
        "one of `secret_data,secret_data_wo` must be specified",
    ),
    "exactly one of: both given": (
        'resource "google_secret_manager_secret_version" "v" {\n  secret         = "s"\n'
        '  secret_data    = "a"\n  secret_data_wo = "b"\n}\n',
        "only one of `secret_data,secret_data_wo` can be specified",
    ),
    "conflicting arguments": (
        'resource "google_storage_bucket_object" "o" {\n  name                     = "o"\n'
        '  bucket                   = "b"\n  content                  = "x"\n'
        '  content_type             = "text/plain"\n  force_empty_content_type = true\n}\n',
        "conflicts with",
    ),
    "validator rejects a value": (
        'resource "google_monitoring_alert_policy" "p" {\n  display_name = "p"\n'
        '  combiner     = "SOMETIMES"\n  conditions {\n    display_name = "c"\n'
        '    condition_absent {\n      filter   = "x"\n      duration = "60s"\n    }\n  }\n}\n',
        "expected to be one of",
    ),
    "ephemeral value into an attribute that is not write-only": (
        'variable "v" {\n  type      = string\n  default   = "x"\n  ephemeral = true\n}\n'
        'resource "google_secret_manager_secret_version" "v" {\n  secret      = "s"\n'
        "  secret_data = var.v\n}\n",
        "Invalid use of ephemeral value",
    ),
    "resource type with no schema": (
        'resource "google_no_such_thing" "x" { name = "x" }\n',
        "google_no_such_thing",
    ),
}


def _negative(harness: PlanHarness, config: str) -> Result:
    module = harness.base / f"negative-src-{abs(hash(config))}"
    module.mkdir()
    (module / "main.tf").write_text(PROVIDERS + config)
    return harness.plan(harness.workspace(module, bundles=False))


def _example_with(harness: PlanHarness, tfvars: str) -> Result:
    workdir = harness.workspace(extra_files={"override.tfvars": tfvars})
    return harness.plan(workdir, [f"-var-file={EXAMPLE.name}", "-var-file=override.tfvars"])


# The example before issue 17: managed_keys without webhook-reconciler fails reconcile's check.
KEYS_WITHOUT_RECONCILER = """
managed_keys = {
  "audit-exporter"  = { scopes = ["audit_logs:read"] }
  "webhook-manager" = { scopes = ["webhooks:read", "webhooks:update"] }
}
"""


@pytest.fixture(scope="module")
def negative(harness: PlanHarness) -> dict[str, Result]:
    jobs: dict[str, Callable[[], Result]] = {
        name: (lambda config=config: _negative(harness, config))
        for name, (config, _) in NEGATIVE.items()
    }
    jobs["failing variable validation"] = lambda: _example_with(harness, KEYS_WITHOUT_RECONCILER)
    return run_all(jobs)


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_harness_fails_where_a_real_plan_fails(negative: dict[str, Result], case: str) -> None:
    result = negative[case]
    assert result.returncode != 0, result.explain()
    assert NEGATIVE[case][1] in " ".join(result.output.split()), result.explain()


def test_example_without_the_reconciler_key_fails_its_validation(
    negative: dict[str, Result],
) -> None:
    result = negative["failing variable validation"]
    assert result.returncode != 0, result.explain()
    assert "Invalid value for variable" in result.errors, result.explain()
    assert "reconcile.api_key must name a managed key with webhook_events:read" in result.output


def test_a_provider_process_of_its_own_plans_as_the_host_does(tmp_path: Path) -> None:
    """The stand-in as one process per launch (plugin.serve), as Terraform runs real providers."""
    direct = PlanHarness(tmp_path, host=False)
    try:
        config = 'resource "google_pubsub_topic" "t" {\n  name   = "t"\n  labels = { a = "b" }\n}\n'
        module = tmp_path / "src"
        module.mkdir()
        (module / "main.tf").write_text(PROVIDERS + config)
        result = direct.plan(direct.workspace(module, bundles=False))
    finally:
        direct.close()
    assert result.returncode == 0, result.explain()
    assert result.to_add == 1, result.explain()
    assert '"goog-terraform-provisioned" = "true"' in result.output
