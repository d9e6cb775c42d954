"""The stand-in providers' own parts: the vendored schemas and the cty wire codec.

spec/terraform-provider-schemas/ is vendored from ../shared/terraform/provider-schemas/ (present
on the machines that produced it, absent in a clone): a drift test compares the two when it can.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.terraform.offline import ROOT
from tests.terraform.standin_provider import cty, planner
from tests.terraform.standin_provider.plugin import SCHEMA_DIR, SOURCES, load_schemas

pytestmark = pytest.mark.terraform

SHARED = ROOT.parent / "shared" / "terraform" / "provider-schemas"


@pytest.mark.parametrize("name", sorted({file for file, _ in SOURCES.values()}))
def test_the_vendored_schemas_match_the_shared_copy_when_there_is_one(name: str) -> None:
    shared = SHARED / name
    if not shared.is_file():
        pytest.skip(f"{shared} is absent (a clone): the vendored copy is the reference")
    assert json.loads(shared.read_text()) == json.loads((SCHEMA_DIR / name).read_text()), (
        f"spec/terraform-provider-schemas/{name} drifted from {shared}: copy it again"
    )


@pytest.mark.parametrize("provider", sorted(SOURCES))
def test_every_provider_has_resources_and_a_provider_block(provider: str) -> None:
    schemas = load_schemas(provider)
    assert schemas["resources"], provider
    assert "block" in schemas["provider"]


def test_every_type_the_module_uses_has_a_schema() -> None:
    """A type missing here fails the plan tests too; this names it without running terraform."""
    import re

    used = set()
    for path in (ROOT / "terraform").glob("*.tf"):
        used |= {
            (m[0], m[1])
            for m in re.findall(r'^(resource|data) "([a-z0-9_]+)"', path.read_text(), re.M)
        }
    known = {
        ("resource" if kind == "resources" else "data", name)
        for provider in SOURCES
        for kind in ("resources", "data_sources")
        for name in load_schemas(provider)[kind]
    }
    assert used - known == set()


OBJECT = [
    "object",
    {
        "s": "string",
        "n": "number",
        "b": "bool",
        "l": ["list", "string"],
        "m": ["map", "number"],
        "o": ["object", {"x": "string"}],
        "d": "dynamic",
    },
]


@pytest.mark.parametrize(
    "value",
    [
        {
            "s": "é" * 40,
            "n": 2**40,
            "b": True,
            "l": ["a"] * 20,
            "m": {"k": -7},
            "o": {"x": None},
            "d": [1, "x"],
        },
        {"s": None, "n": 1.5, "b": False, "l": [], "m": {}, "o": None, "d": None},
        {
            "s": cty.UNKNOWN,
            "n": -100000,
            "b": cty.UNKNOWN,
            "l": cty.UNKNOWN,
            "m": None,
            "o": {"x": "y"},
            "d": "z",
        },
    ],
)
def test_cty_values_round_trip(value: dict[str, object]) -> None:
    assert cty.decode(cty.encode(value, OBJECT), OBJECT) == value


def test_an_object_is_encoded_with_every_attribute_of_its_type() -> None:
    assert cty.decode(cty.encode({"s": "a"}, OBJECT), OBJECT) == {
        "s": "a",
        "n": None,
        "b": None,
        "l": None,
        "m": None,
        "o": None,
        "d": None,
    }


def test_unknown_values_with_refinements_decode_as_unknown() -> None:
    refined = b"\xc7\x03\x0c\x81\x01\xc3"  # ext 12: an unknown known not to be null
    assert cty.decode(refined, "string") is cty.UNKNOWN


def test_a_create_plans_defaults_unknown_computed_and_no_write_only_value() -> None:
    schema = load_schemas("google")["resources"]["google_secret_manager_secret_version"]
    config = dict.fromkeys(schema["block"]["attributes"])
    config.update(secret="s", secret_data_wo="value")
    planned, problems = planner.plan_create(
        schema, config, planner.ProviderConfig({"project": "p"})
    )
    assert problems == []
    assert planned["secret_data_wo"] is None
    assert planned["enabled"] is True
    assert planned["name"] is cty.UNKNOWN
    assert planned["id"] is cty.UNKNOWN


def test_a_project_neither_on_the_resource_nor_the_provider_is_an_error() -> None:
    schema = load_schemas("google")["resources"]["google_pubsub_topic"]
    config = dict.fromkeys(schema["block"]["attributes"]) | {"name": "t"}
    _, problems = planner.plan_create(schema, config, planner.ProviderConfig({}))
    assert [p.summary for p in problems] == ["project: required field is not set"]


def test_schema_dir_is_inside_the_repository() -> None:
    assert Path(SCHEMA_DIR).is_relative_to(ROOT)


def test_a_missing_terraform_binary_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.terraform import plan_harness

    monkeypatch.setattr(plan_harness, "TERRAFORM", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the plan tests"):
        plan_harness.require_terraform()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        plan_harness.require_terraform()
