"""Checks recorded sandbox responses against Instantly's OpenAPI document.

Each response is validated against the schema the document gives for its operation and status,
with the OpenAPI 3.1 validator (`openapi-schema-validator`: JSON Schema 2020-12 plus the OAS
vocabulary, formats `uuid`, `date-time`, `email`, `date` checked), `$ref`s resolved against the
whole document. Rules for what the document does not cover:

- an error status the operation does not document (400 on a list, 403, 500, 501, 503, or the 404
  of an unknown route) must still be the error envelope every Instantly error uses, with
  `statusCode` equal to the status and `error` its reason phrase;
- a non-JSON body is accepted only for a 5xx (the HTML page of a load balancer);
- an undocumented success status is a violation;
- a response a sandbox variant deliberately shaped against the document (`deviations`, see
  `variants.py`) is checked against the document with exactly those deviations allowed.

Needs the dev dependencies (`openapi-schema-validator`, `jsonschema`); the sandbox itself does not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from instantly_sandbox.gateway import BASE_PATH
from instantly_sandbox.recorder import RecordedResponse
from instantly_sandbox.variants import DEVIATIONS, relax

DOCUMENT_ENV = "INSTANTLY_OPENAPI"
_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCUMENT = _REPO_ROOT / "spec" / "instantly-openapi-v2.json"
_URI = "urn:instantly:openapi-v2"
_MAX_PROBLEMS_PER_RESPONSE = 5
CHECK_ALL_FIRST = 200
CHECK_EVERY_NTH_AFTER = 20


def find_document(environ: Mapping[str, str] | None = None) -> Path:
    """`$INSTANTLY_OPENAPI`, else the repository's copy `spec/instantly-openapi-v2.json`
    (which `scripts/gen_scopes.py` reads too). Raises FileNotFoundError naming the path."""
    env = os.environ if environ is None else environ
    path = Path(env[DOCUMENT_ENV]) if env.get(DOCUMENT_ENV) else DEFAULT_DOCUMENT
    if not path.is_file():
        raise FileNotFoundError(
            f"Instantly's OpenAPI document not found at {path}; set {DOCUMENT_ENV} to its path"
        )
    return path


def _envelope_schema(status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = None
    return {
        "type": "object",
        "required": ["statusCode", "error", "message"],
        "additionalProperties": False,
        "properties": {
            "statusCode": {"const": status},
            "error": {"const": phrase} if phrase else {"type": "string"},
            "message": {"type": "string"},
        },
    }


class OpenApiContract:
    """Validates `RecordedResponse`s. Build once per test session: loading is the slow part."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        resource: Resource[Any] = Resource.from_contents(
            dict(document), default_specification=DRAFT202012
        )
        self._registry: Registry[Any] = Registry().with_resource(_URI, resource)
        self._validators: dict[tuple[str | None, int], OAS31Validator | None] = {}
        self._relaxed: dict[tuple[str, ...], OpenApiContract] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> OpenApiContract:
        with (path or find_document()).open(encoding="utf-8") as handle:
            return cls(json.load(handle))

    def operations(self) -> set[str]:
        """Every documented operation as "METHOD /path" without the base path."""
        found = set()
        for path, item in self.document["paths"].items():
            for method in item:
                if method in ("get", "post", "put", "patch", "delete"):
                    found.add(f"{method.upper()} {path.removeprefix(BASE_PATH)}")
        return found

    def documented_statuses(self, operation: str) -> set[int]:
        operation_doc = self._operation(operation)
        if operation_doc is None:
            return set()
        return {int(code) for code in operation_doc.get("responses", {}) if code.isdigit()}

    def _operation(self, operation: str) -> Mapping[str, Any] | None:
        method, _, template = operation.partition(" ")
        item = self.document["paths"].get(BASE_PATH + template)
        if item is None:
            return None
        found: Mapping[str, Any] | None = item.get(method.lower())
        return found

    def _validator(self, operation: str | None, status: int) -> OAS31Validator | None:
        """The validator for (operation, status); None when a success status is undocumented."""
        cache_key = (operation, status)
        if cache_key in self._validators:
            return self._validators[cache_key]
        schema: dict[str, Any] | None = None
        operation_doc = self._operation(operation) if operation else None
        response = (operation_doc or {}).get("responses", {}).get(str(status))
        if response and "application/json" in response.get("content", {}):
            method, _, template = (operation or "").partition(" ")
            pointer = "/".join(
                part.replace("~", "~0").replace("/", "~1")
                for part in (
                    "paths",
                    BASE_PATH + template,
                    method.lower(),
                    "responses",
                    str(status),
                    "content",
                    "application/json",
                    "schema",
                )
            )
            schema = {"$ref": f"{_URI}#/{pointer}"}
        elif status >= 400:
            schema = _envelope_schema(status)
        validator = (
            None
            if schema is None
            else OAS31Validator(
                schema, registry=self._registry, format_checker=oas31_format_checker
            )
        )
        self._validators[cache_key] = validator
        return validator

    def relaxed(self, deviations: tuple[str, ...]) -> OpenApiContract:
        """This contract with `deviations` (names from `variants.DEVIATIONS`) allowed."""
        key = tuple(sorted(deviations))
        if key not in self._relaxed:
            self._relaxed[key] = OpenApiContract(relax(self.document, key))
        return self._relaxed[key]

    def check(self, response: RecordedResponse) -> list[str]:
        """The problems with one response (empty when it conforms)."""
        where = f"{response.operation or 'unknown route'} {response.method} {response.path}"
        if response.deviations:
            unknown = [name for name in response.deviations if name not in DEVIATIONS]
            if unknown:
                return [f"{where}: unknown deviations {unknown}"]
            allowed = self.relaxed(response.deviations)
            return allowed.check(replace(response, deviations=()))
        if response.operation is not None and self._operation(response.operation) is None:
            return [f"{where}: operation not in the OpenAPI document"]
        if isinstance(response.body, str):
            if response.status >= 500:
                return []
            return [f"{where}: {response.status} with a non-JSON body"]
        validator = self._validator(response.operation, response.status)
        if validator is None:
            return [f"{where}: status {response.status} is not documented"]
        problems = []
        for failure in validator.iter_errors(response.body):
            location = "/".join(str(part) for part in failure.absolute_path) or "(body)"
            problems.append(f"{where} -> {response.status} at {location}: {failure.message}")
            if len(problems) >= _MAX_PROBLEMS_PER_RESPONSE:
                break
        return problems

    def check_all(self, responses: Iterable[RecordedResponse]) -> list[str]:
        """The problems of every response, except that past the first `CHECK_ALL_FIRST` of one
        (operation, status) only every `CHECK_EVERY_NTH_AFTER`-th is checked: a loop of 20,000
        calls must not cost minutes, and drift shows on the first responses of a kind."""
        problems: list[str] = []
        seen: dict[tuple[str | None, int], int] = {}
        for response in responses:
            kind = (response.operation, response.status)
            count = seen[kind] = seen.get(kind, 0) + 1
            if count <= CHECK_ALL_FIRST or count % CHECK_EVERY_NTH_AFTER == 0:
                problems.extend(self.check(response))
        return problems
