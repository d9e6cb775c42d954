"""Every block in terraform/*.tf against the google provider's own argument schema, offline.

`spec/google-provider-schema.json` is the argument schema of hashicorp/google and google-beta
7.45.0 for the resource and data-source types the module uses, extracted from the providers' Go
source (vendored, like the OpenAPI document, so a clone needs nothing beside it). The real
`terraform validate` and `plan` run in test_plan.py against stand-in providers; this test, with no
binary needed, names what validate would catch for arguments: a misspelt or removed argument, a block written as an
attribute or the reverse, a required argument left out, too many or too few nested blocks, a
beta-only resource without `provider = google-beta`. It reads every `.tf` file in terraform/, so
files added later are checked too. Types and expression values are not checked (validate would).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2
import pytest
from tests.terraform.offline import ROOT, TF_DIR, HclBlock, hcl_blocks, label, load

pytestmark = pytest.mark.terraform

SCHEMA_PATH = ROOT / "spec" / "google-provider-schema.json"
# Where the schema comes from on the machines that produced it; absent in a user's clone.
SHARED_SCHEMA = ROOT.parent / "shared" / "terraform" / "google-provider-schema.json"

# Terraform's own meta-arguments: valid in every resource and data block, in no provider schema.
META_ARGUMENTS = {"count", "for_each", "provider", "depends_on", "lifecycle"}
RESOURCE_ONLY_META = {"provisioner", "connection"}

# Providers outside the vendored file, written here by hand from their registry documentation,
# in the vendored file's shape. Keep this short: anything larger deserves a vendored schema.
EXTRA_RESOURCES: dict[str, dict[str, Any]] = {
    # hashicorp/time: time_sleep (docs: create_duration, destroy_duration, triggers; none required).
    "time_sleep": {
        "attributes": {
            name: {"required": False, "optional": True}
            for name in ("create_duration", "destroy_duration", "triggers")
        },
        "blocks": {},
        "computed_only": ["id"],
    },
}


def _attributes(required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    return {
        **{name: {"required": True, "optional": False} for name in required},
        **{name: {"required": False, "optional": True} for name in optional},
    }


# google resource types the vendored schema (a copy of ../shared's, kept equal by a test) lacks,
# written here by hand from the provider's documentation, in the vendored shape.
GOOGLE_EXTRA: dict[str, dict[str, Any]] = {
    # google_logging_project_exclusion (docs: name, filter required; description, disabled,
    # project optional). ../shared/terraform/provider-schemas/google-7.45.0.json has the same.
    "google_logging_project_exclusion": {
        "attributes": _attributes(("name", "filter"), ("description", "disabled", "project", "id")),
        "blocks": {},
        "computed_only": [],
    },
}


def _schema() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return parsed


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and item.get("__is_block__") for item in value
    )


def provider_of(block: HclBlock) -> str:
    """The provider configuration a block uses: `provider = ...`, or its type's prefix."""
    explicit = block.body.get("provider")
    if isinstance(explicit, str):
        return label(explicit).split(".")[0]
    return block.type.split("_")[0]


def schema_for(schema: dict[str, Any], block: HclBlock) -> dict[str, Any] | str:
    """The block's schema, or why there is none (an error message)."""
    provider = provider_of(block)
    where = f"{block.file}: {block.address}"
    if provider in ("google", "google-beta"):
        section = schema["resources" if block.kind == "resource" else "data_sources"][provider]
        if block.type not in section and block.type in GOOGLE_EXTRA:
            return GOOGLE_EXTRA[block.type]
        if block.type not in section:
            if block.type in schema["meta"]["not_in_google"] and provider == "google":
                return (
                    f"{where}: {block.type} exists only in google-beta: set provider = google-beta"
                )
            return f"{where}: {block.type} is not in the vendored {provider} schema (spec/): extend it from the provider's source"
        found: dict[str, Any] = section[block.type]
        return found
    if block.kind == "resource" and block.type in EXTRA_RESOURCES:
        return EXTRA_RESOURCES[block.type]
    return f"{where}: no schema for provider {provider!r}: add one to EXTRA_RESOURCES or spec/"


def check_body(
    node: dict[str, Any], body: dict[str, Any], where: str, *, meta: frozenset[str] = frozenset()
) -> list[str]:
    """Every problem with `body` against schema `node` (attributes, nested blocks, their counts)."""
    errors: list[str] = []
    attributes: dict[str, Any] = node.get("attributes", {})
    nested: dict[str, Any] = node.get("blocks", {})
    computed = set(node.get("computed_only", []))
    counts: dict[str, int] = {}
    dynamic: set[str] = set()
    for key, value in body.items():
        if key.startswith("__") or key in meta:
            continue
        if key == "dynamic" and isinstance(value, list):
            # dynamic "NAME" { for_each = ...; content { ... } }: a NAME block, repeated.
            for item in value:
                for quoted, spec in dict(item).items():
                    if quoted.startswith("__"):
                        continue
                    block_name = label(quoted)
                    dynamic.add(block_name)
                    if block_name not in nested:
                        errors.append(f"{where}: unknown nested block {block_name!r} (dynamic)")
                        continue
                    for content in spec.get("content", []):
                        errors += check_body(
                            nested[block_name]["block"], content, f"{where}.{block_name}"
                        )
            continue
        if key in attributes:
            if _is_block(value):
                errors.append(f"{where}: {key!r} is an argument, written as a block")
            continue
        if key in nested:
            if not _is_block(value):
                errors.append(f"{where}: {key!r} is a nested block, written as an argument")
                continue
            counts[key] = len(value)
            for item in value:
                errors += check_body(nested[key]["block"], item, f"{where}.{key}")
            continue
        if key in computed:
            errors.append(f"{where}: {key!r} is computed by the provider and cannot be set")
        else:
            errors.append(f"{where}: unknown argument or block {key!r}")
    for key, spec in attributes.items():
        if spec.get("required") and key not in body:
            errors.append(f"{where}: required argument {key!r} is missing")
    for key, spec in nested.items():
        if key in dynamic:
            continue  # how many a dynamic block makes is known at plan time only
        count = counts.get(key, 0)
        minimum = max(spec.get("min_items", 0), 1 if spec.get("required") else 0)
        maximum = spec.get("max_items", 0)  # 0: no limit
        if count < minimum:
            errors.append(f"{where}: needs at least {minimum} {key!r} block(s), has {count}")
        if maximum and count > maximum:
            errors.append(f"{where}: allows at most {maximum} {key!r} block(s), has {count}")
    return errors


def check_config(schema: dict[str, Any], parsed: dict[str, Any], file: str) -> list[str]:
    """Every schema problem in one parsed .tf file (resources, data sources, provider blocks)."""
    errors: list[str] = []
    for block in hcl_blocks(parsed, file):
        node = schema_for(schema, block)
        if isinstance(node, str):
            errors.append(node)
            continue
        meta = META_ARGUMENTS | (RESOURCE_ONLY_META if block.kind == "resource" else set())
        errors += check_body(node, block.body, f"{file}: {block.address}", meta=frozenset(meta))
    for item in parsed.get("provider", []):
        for name, body in item.items():
            provider = label(name)
            if provider in schema["providers"]:
                where = f"{file}: provider {provider}"
                errors += check_body(
                    schema["providers"][provider], body, where, meta=frozenset({"alias"})
                )
    return errors


# --- The vendored schema ---------------------------------------------------------------------------


def test_the_vendored_schema_is_the_google_providers_7_45() -> None:
    schema = _schema()
    for package in ("google", "google-beta"):
        assert schema["meta"]["packages"][package]["provider_version"] == ["7.45.0"]
        assert schema["resources"][package]
        assert schema["providers"][package]["attributes"]


def test_the_vendored_schema_matches_the_shared_copy_when_there_is_one() -> None:
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"{SHARED_SCHEMA} is absent (a clone): the vendored copy is the reference")
    assert json.loads(SHARED_SCHEMA.read_text()) == _schema(), (
        f"spec/{SCHEMA_PATH.name} drifted from {SHARED_SCHEMA}: copy it again"
    )


# --- terraform/ against it ---------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(TF_DIR.glob("*.tf")), ids=lambda p: p.name)
def test_every_block_uses_only_arguments_the_provider_has(path: Path) -> None:
    assert check_config(_schema(), load(path), path.name) == []


def test_the_check_covers_every_resource_and_data_source_of_the_module() -> None:
    blocks = [b for p in sorted(TF_DIR.glob("*.tf")) for b in hcl_blocks(load(p), p.name)]
    schema = _schema()
    assert len(blocks) > 40
    assert {b.kind for b in blocks} == {"resource", "data"}
    assert all(isinstance(schema_for(schema, b), dict) for b in blocks)


# --- The checker fails where validate would ------------------------------------------------------

BROKEN = """
resource "google_pubsub_topic" "typo" {
  name                       = "t"
  message_retention_durations = "600s"
}

resource "google_secret_manager_secret_version" "no_secret" {
  secret_data_wo = "x"
}

resource "google_monitoring_alert_policy" "two_strategies" {
  display_name = "a"
  combiner     = "OR"
  conditions {
    display_name = "c"
    condition_threshold {
      filter     = "f"
      comparison = "COMPARISON_GT"
      durations  = "0s"
    }
  }
  alert_strategy {
    auto_close = "1800s"
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "no_conditions" {
  display_name = "a"
  combiner     = "OR"
}

resource "google_pubsub_subscription" "block_as_attribute" {
  name            = "s"
  topic           = "t"
  retry_policy    = { minimum_backoff = "10s" }
  expiration_policy {
    ttl = ""
  }
  dynamic "push_configs" {
    for_each = []
    content {}
  }
}

resource "google_project_service_identity" "beta_only" {
  service = "pubsub.googleapis.com"
}

resource "google_storage_bucket" "computed" {
  name      = "b"
  location  = "EU"
  self_link = "x"
}

data "google_project" "bogus" {
  project_ids = "p"
}

resource "time_sleep" "wait" {
  create_duration = "60s"
  wake_up         = "now"
}
"""


def test_the_checker_reports_each_kind_of_mistake() -> None:
    errors = check_config(_schema(), hcl2.loads(BROKEN), "broken.tf")
    expected = [
        "google_pubsub_topic.typo: unknown argument or block 'message_retention_durations'",
        "no_secret: required argument 'secret' is missing",
        "two_strategies.conditions.condition_threshold: unknown argument or block 'durations'",
        "two_strategies.conditions.condition_threshold: required argument 'duration' is missing",
        "two_strategies: allows at most 1 'alert_strategy' block(s), has 2",
        "no_conditions: needs at least 1 'conditions' block(s), has 0",
        "block_as_attribute: 'retry_policy' is a nested block, written as an argument",
        "block_as_attribute: unknown nested block 'push_configs' (dynamic)",
        "google_project_service_identity exists only in google-beta",
        "computed: 'self_link' is computed by the provider and cannot be set",
        "data.google_project.bogus: unknown argument or block 'project_ids'",
        "time_sleep.wait: unknown argument or block 'wake_up'",
    ]
    for fragment in expected:
        assert any(fragment in error for error in errors), (fragment, errors)
    assert len(errors) == len(expected), errors


def test_a_well_formed_block_passes_and_meta_arguments_are_allowed() -> None:
    config = """
resource "google_pubsub_topic" "fine" {
  for_each   = toset(["a"])
  provider   = google-beta
  name       = each.key
  depends_on = [google_project_service.enabled]
  lifecycle {
    prevent_destroy = true
  }
}
"""
    assert check_config(_schema(), hcl2.loads(config), "fine.tf") == []
