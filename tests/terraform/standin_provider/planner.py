"""What the providers' SDK does with a configuration, for a plan of a create, from the schemas.

Validation (ValidateResourceTypeConfig / ValidateDataSourceConfig, which Terraform calls with
the evaluated configuration during plan too): a required argument that is null, `exactly_one_of`,
`conflicts_with`, `at_least_one_of` and `required_with` (their keys are paths from the resource's
root, `replication.0.auto`), `min_items` / `max_items`, and the validators the schema names that
can be read without the provider's Go code (enums, regexes, JSON, base64). A value still unknown
is never an error, as in the SDK.

Planning a create: the configuration, with schema defaults for null optional arguments, every
computed attribute the configuration left null unknown, write-only attributes null, then the
customize-diff functions the schema lists that shape a create (project / region from the
provider, label and annotation maps, deletion policy).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.terraform.standin_provider.cty import UNKNOWN, convert

ATTRIBUTION = ("goog-terraform-provisioned", "true")


@dataclass(frozen=True)
class Problem:
    """One error diagnostic: what, why, and the attribute path it is about."""

    summary: str
    detail: str = ""
    path: tuple[str | int, ...] = ()


@dataclass
class ProviderConfig:
    """The provider block's evaluated values the customize-diff functions read."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.values.get(name)


def block_type(block: dict[str, Any]) -> list[Any]:
    """The cty object type of a block schema (attributes and nested blocks)."""
    attributes: dict[str, Any] = {
        name: attribute["type"] for name, attribute in block.get("attributes", {}).items()
    }
    for name, nested in block.get("block_types", {}).items():
        inner = block_type(nested["block"])
        mode = nested["nesting_mode"]
        attributes[name] = inner if mode in ("single", "group") else [mode, inner]
    return ["object", attributes]


def _is_set(value: Any) -> bool:
    return value is not None and value != []


def _lookup(root: Any, key: str) -> Any:
    """The value at an SDK key (`a.0.b`), None when absent, UNKNOWN when a step is unknown."""
    value = root
    for step in key.split("."):
        if value is UNKNOWN:
            return UNKNOWN
        if value is None:
            return None
        if step.isdigit():
            index = int(step)
            value = value[index] if isinstance(value, list) and index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


_ENUM = re.compile(r"(?:ValidateEnum|StringInSlice)\(\[\]string\{(?P<items>[^}]*)\}")
_REGEXP = re.compile(r"ValidateRegexp\(`(?P<pattern>[^`]*)`\)")


def _validator_problem(validate: Any, value: Any) -> str | None:
    """Why `value` fails the schema's validator, or None (also for validators not modelled)."""
    if not isinstance(value, str):
        return None
    if isinstance(validate, dict) and "regex" in validate:
        if re.search(validate["regex"], value) is None:
            return f"{validate.get('message', 'must match ' + validate['regex'])}, got {value!r}"
        return None
    text = str(validate)
    if enum := _ENUM.search(text):
        allowed = re.findall(r'"([^"]*)"', enum.group("items"))
        if value not in allowed:
            return f"expected to be one of {allowed}, got {value!r}"
    elif regexp := _REGEXP.search(text):
        if re.search(regexp.group("pattern"), value) is None:
            return f"{value!r} does not match {regexp.group('pattern')!r}"
    elif "StringIsJSON" in text:
        try:
            json.loads(value)
        except ValueError as exc:
            return f"contains an invalid JSON: {exc}"
    elif "ValidateBase64String" in text:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            return f"{value!r} is not base64"
    return None


def _with_own(keys: list[str] | None, own: str) -> list[str]:
    if not keys:
        return []
    return keys if own in keys else [own, *keys]


def _key_problems(
    name: str, spec: dict[str, Any], value: Any, root: Any, path: tuple[str | int, ...]
) -> Iterator[Problem]:
    """exactly_one_of / conflicts_with / at_least_one_of / required_with on one argument.

    The SDK lists the argument itself in its exactly/at-least sets; the plugin framework lists
    only the others: the argument's own key is added where missing.
    """
    own = ".".join(str(step) for step in path)
    keys = _with_own(spec.get("exactly_one_of"), own)
    if keys:
        values = [_lookup(root, key) for key in keys]
        if UNKNOWN not in values:
            chosen = [key for key, v in zip(keys, values, strict=True) if _is_set(v)]
            if len(chosen) != 1:
                which = ",".join(keys)
                detail = (
                    f"only one of `{which}` can be specified, but `{','.join(chosen)}` were specified."
                    if chosen
                    else f"one of `{which}` must be specified"
                )
                yield Problem("Invalid combination of arguments", detail, path)
    if _is_set(value) and value is not UNKNOWN:
        for key in spec.get("conflicts_with", []):
            other = _lookup(root, key)
            if _is_set(other) and other is not UNKNOWN:
                yield Problem(
                    "Conflicting configuration arguments", f'"{name}": conflicts with {key}', path
                )
        for key in spec.get("required_with", []):
            if not _is_set(_lookup(root, key)):
                yield Problem(
                    "Missing required argument", f'"{name}": all of `{key}` must be specified', path
                )
    keys = _with_own(spec.get("at_least_one_of"), own)
    if keys:
        values = [_lookup(root, key) for key in keys]
        if UNKNOWN not in values and not any(_is_set(v) for v in values):
            yield Problem(
                "Missing required argument", f"one of `{','.join(keys)}` must be specified", path
            )


def validate(
    block: dict[str, Any], value: Any, root: Any = None, path: tuple[str | int, ...] = ()
) -> list[Problem]:
    """Every problem the SDK would report for a configuration of this block."""
    if value is UNKNOWN or value is None:
        return []
    root = value if root is None else root
    problems: list[Problem] = []
    for name, spec in block.get("attributes", {}).items():
        item = value.get(name)
        where = (*path, name)
        if spec.get("required") and item is None:
            problems.append(
                Problem(
                    "Missing required argument",
                    f'The argument "{name}" is required, but no definition was found.',
                    where,
                )
            )
        if item is not None and item is not UNKNOWN and "validate" in spec:
            why = _validator_problem(spec["validate"], item)
            if why:
                problems.append(Problem("Invalid value", f'"{name}" {why}', where))
        problems.extend(_key_problems(name, spec, item, root, where))
    for name, nested in block.get("block_types", {}).items():
        items = value.get(name)
        where = (*path, name)
        problems.extend(_key_problems(name, nested, items, root, where))
        if items is UNKNOWN:
            continue
        if nested["nesting_mode"] in ("single", "group"):
            if nested.get("required") and items is None:
                problems.append(
                    Problem("Missing required block", f'A block "{name}" is required.', where)
                )
            problems.extend(validate(nested["block"], items, root, where))
            continue
        elements = items or []
        count = len(elements)
        if count < nested.get("min_items", 0):
            problems.append(
                Problem(
                    "Insufficient blocks",
                    f'At least {nested["min_items"]} "{name}" blocks are required.',
                    where,
                )
            )
        if nested.get("max_items", 0) and count > nested["max_items"]:
            problems.append(
                Problem(
                    "Too many blocks",
                    f'No more than {nested["max_items"]} "{name}" blocks are allowed.',
                    where,
                )
            )
        for index, element in enumerate(elements):
            problems.extend(validate(nested["block"], element, root, (*where, index)))
    return problems


def plan_block(block: dict[str, Any], config: Any) -> Any:
    """The planned value of one block for a create (no customize-diff yet)."""
    if config is None or config is UNKNOWN:
        return config
    planned: dict[str, Any] = {}
    for name, spec in block.get("attributes", {}).items():
        value = config.get(name)
        if spec.get("write_only"):
            value = None
        elif value is None and "default" in spec:
            value = convert(spec["default"], spec["type"])
        elif value is None and spec.get("computed"):
            value = UNKNOWN
        planned[name] = value
    for name, nested in block.get("block_types", {}).items():
        value = config.get(name)
        if nested["nesting_mode"] in ("single", "group"):
            planned[name] = plan_block(nested["block"], value)
        elif isinstance(value, list):
            planned[name] = [plan_block(nested["block"], element) for element in value]
        else:
            planned[name] = value
    return planned


def _merged_labels(*maps: Any) -> Any:
    merged: dict[str, str] = {}
    for labels in maps:
        if labels is UNKNOWN:
            return UNKNOWN
        if isinstance(labels, dict):
            if UNKNOWN in labels.values():
                return UNKNOWN
            merged.update(labels)
    return merged


def customize_create(
    schema: dict[str, Any],
    config: dict[str, Any],
    planned: dict[str, Any],
    provider: ProviderConfig,
) -> list[Problem]:
    """The customize-diff functions of the schema that shape a create; their errors."""
    functions = str(schema.get("customize_diff") or "")
    attributes = schema["block"].get("attributes", {})
    problems: list[Problem] = []
    for name, function in (
        ("project", "DefaultProviderProject"),
        ("region", "DefaultProviderRegion"),
    ):
        if function in functions and name in attributes and config.get(name) is None:
            value = provider.get(name)
            if value is None:
                problems.append(
                    Problem(
                        f"{name}: required field is not set",
                        f"set {name} on the resource or the provider",
                        (name,),
                    )
                )
            planned[name] = value
    if "SetLabelsDiff" in functions and "terraform_labels" in attributes:
        attribution = (
            dict([ATTRIBUTION])
            if provider.get("add_terraform_attribution_label") is not False
            else {}
        )
        labels = _merged_labels(provider.get("default_labels"), config.get("labels"), attribution)
        planned["terraform_labels"] = labels
        planned["effective_labels"] = labels
    if "SetAnnotationsDiff" in functions and "effective_annotations" in attributes:
        planned["effective_annotations"] = _merged_labels(config.get("annotations"))
    if "DefaultProviderDeletionPolicy" in functions and config.get("deletion_policy") is None:
        planned["deletion_policy"] = "DELETE"
    return problems


def plan_create(
    schema: dict[str, Any], config: dict[str, Any], provider: ProviderConfig
) -> tuple[dict[str, Any], list[Problem]]:
    """The planned state of a new resource, and the errors planning it raised."""
    planned = plan_block(schema["block"], config)
    problems = customize_create(schema, config, planned, provider)
    if "id" in planned:
        planned["id"] = UNKNOWN
    return planned, problems


# Plausible values for computed attributes of data sources (which must come back wholly known).
_DATA_VALUES = {"number": "123456789012", "project_id": None}


def _archive_hashes(config: dict[str, Any]) -> dict[str, Any]:
    """archive_file's outputs as hashes of the sources' bytes (no zip is written at plan time)."""
    digest_input = b""
    if isinstance(config.get("source_content"), str):
        digest_input = config["source_content"].encode()
    for key in ("source_file", "source_dir"):
        source = config.get(key)
        if isinstance(source, str) and Path(source).exists():
            paths = [Path(source)] if Path(source).is_file() else sorted(Path(source).rglob("*"))
            for path in paths:
                if path.is_file():
                    digest_input += str(path).encode() + b"\0" + path.read_bytes()
    sha256 = hashlib.sha256(digest_input)
    sha512 = hashlib.sha512(digest_input)
    return {
        "output_sha": hashlib.sha1(digest_input).hexdigest(),  # noqa: S324 - the provider's own output
        "output_sha256": sha256.hexdigest(),
        "output_base64sha256": base64.b64encode(sha256.digest()).decode(),
        "output_sha512": sha512.hexdigest(),
        "output_base64sha512": base64.b64encode(sha512.digest()).decode(),
        "output_md5": hashlib.md5(digest_input).hexdigest(),  # noqa: S324 - the provider's own output
        "output_size": len(digest_input),
    }


def _known(spec_type: Any, name: str) -> Any:
    if spec_type == "string":
        return f"standin-{name}"
    if spec_type == "number":
        return 0
    if spec_type == "bool":
        return False
    if isinstance(spec_type, list) and spec_type[0] in ("list", "set", "tuple"):
        return []
    if isinstance(spec_type, list):
        return {}
    return None


def read_data(
    type_name: str, schema: dict[str, Any], config: dict[str, Any], provider: ProviderConfig
) -> dict[str, Any]:
    """A data source's state: the configuration, every computed attribute filled and known."""
    state = dict(config)
    extra = _archive_hashes(config) if type_name == "archive_file" else {}
    project = config.get("project_id") or config.get("project") or provider.get("project")
    for name, spec in schema["block"].get("attributes", {}).items():
        if state.get(name) is not None or not spec.get("computed"):
            continue
        if name in extra:
            state[name] = extra[name]
        elif name == "id":
            state[name] = f"projects/{project}" if project else f"standin-{type_name}"
        elif name in ("project", "project_id") and project:
            state[name] = project
        elif name in _DATA_VALUES and _DATA_VALUES[name] is not None:
            state[name] = _DATA_VALUES[name]
        else:
            state[name] = _known(spec["type"], name)
    return state
