"""Generate `instantly_guard/scopes/_generated.py` from Instantly's OpenAPI document.

Usage: python scripts/gen_scopes.py [OPENAPI_JSON] [--output PATH] [--check]
       (OPENAPI_JSON defaults to spec/instantly-openapi-v2.json, the repository's copy;
        `make scopes` runs this.)

What the document says, and where:
- The scopes a key can hold are the `enum` of `scopes` items in the request body of
  `POST /api-keys` (schema title "CreateAPI Key"). Each is `resource:action`; `all` is both the
  wildcard resource and the wildcard action.
- An operation declares the scopes it accepts only in prose: its `description` carries a line
  `Requires one of the following scopes: `a:b`, `a:all`, `all:b`, `all:all``. Some descriptions
  carry the line twice; the union is taken. No operation lists scopes under `security` (the
  bearer scheme has none), but any that appear there are merged in too.
- Paths are written with the `/api/v2` prefix; operation keys drop it ("GET /audit-logs"), the
  form the sandbox and the client use, since the client's base URL already ends in `/api/v2`.

The output is deterministic (document order, no timestamps, no absolute paths) and emitted already
in `ruff format` style, so the committed file can be compared byte for byte with a fresh run
(tests/unit/test_scopes.py does; `--check` does the same from the command line).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OPENAPI = REPO_ROOT / "spec" / "instantly-openapi-v2.json"
DEFAULT_OUTPUT = REPO_ROOT / "shared" / "instantly_guard" / "scopes" / "_generated.py"

PATH_PREFIX = "/api/v2"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCOPE_LINE = re.compile(r"Requires one of the following scopes:([^\n]*)")
SCOPE_TOKEN = re.compile(r"`([^`]*)`")
SCOPE_SHAPE = re.compile(r"^[a-z][a-z0-9_-]*:[a-z]+$")


class OpenApiError(Exception):
    """The document does not have the shape this generator relies on."""


@dataclass(frozen=True)
class ScopeTable:
    """Everything the generated module holds, in document order."""

    title: str
    version: str
    sha256: str
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    key_scopes: tuple[str, ...]
    operations: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def unscoped(self) -> tuple[str, ...]:
        return tuple(op for op, scopes in self.operations if not scopes)

    @property
    def operation_only_resources(self) -> tuple[str, ...]:
        """Resources that operations require but that no key can be given (not in the enum)."""
        known = set(self.resources)
        seen: dict[str, None] = {}
        for _, scopes in self.operations:
            for scope in scopes:
                resource = scope.split(":", 1)[0]
                if resource not in known:
                    seen.setdefault(resource)
        return tuple(seen)


def load_document(path: Path) -> tuple[Mapping[str, Any], str]:
    """Read the document; return it and the sha256 of its bytes (recorded as provenance)."""
    raw = path.read_bytes()
    return json.loads(raw), hashlib.sha256(raw).hexdigest()


def extract(doc: Mapping[str, Any], sha256: str) -> ScopeTable:
    """Pull the scope vocabulary and every operation's accepted scopes out of the document."""
    paths: Mapping[str, Any] = doc.get("paths") or {}
    if not paths:
        raise OpenApiError("the document has no paths")
    key_scopes = _key_scope_enum(paths)
    resources = _unique(scope.split(":", 1)[0] for scope in key_scopes)
    actions = _unique(scope.split(":", 1)[1] for scope in key_scopes)
    operations: list[tuple[str, tuple[str, ...]]] = []
    for path, item in paths.items():
        if not path.startswith(PATH_PREFIX + "/"):
            raise OpenApiError(f"path {path!r} does not start with {PATH_PREFIX}/")
        template = path[len(PATH_PREFIX) :]
        for method in HTTP_METHODS:
            if method in item:
                key = f"{method.upper()} {template}"
                operations.append((key, _operation_scopes(key, item[method], set(actions))))
    info = doc.get("info") or {}
    return ScopeTable(
        title=str(info.get("title", "")),
        version=str(info.get("version", "")),
        sha256=sha256,
        resources=resources,
        actions=actions,
        key_scopes=key_scopes,
        operations=tuple(operations),
    )


def _key_scope_enum(paths: Mapping[str, Any]) -> tuple[str, ...]:
    try:
        body = paths[PATH_PREFIX + "/api-keys"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        enum = schema["properties"]["scopes"]["items"]["enum"]
    except (KeyError, TypeError) as exc:
        raise OpenApiError("POST /api-keys has no scopes enum in its request body") from exc
    scopes = tuple(str(scope) for scope in enum)
    for scope in scopes:
        if not SCOPE_SHAPE.match(scope):
            raise OpenApiError(f"key scope {scope!r} is not resource:action")
    if len(set(scopes)) != len(scopes):
        raise OpenApiError("the key scope enum repeats a value")
    return scopes


def _operation_scopes(key: str, operation: Mapping[str, Any], actions: set[str]) -> tuple[str, ...]:
    description = str(operation.get("description") or "")
    found: list[str] = []
    for line in SCOPE_LINE.findall(description):
        tokens = SCOPE_TOKEN.findall(line)
        if not tokens:
            raise OpenApiError(f"{key}: a scope line lists no `scope`: {line.strip()!r}")
        found.extend(tokens)
    for requirement in operation.get("security") or ():
        for scopes in requirement.values():
            found.extend(str(scope) for scope in scopes)
    # A description that talks about scopes in any other wording would silently become
    # "no scope needed"; stop instead so the generator gets taught the new wording.
    if not found and "scope" in description.lower():
        raise OpenApiError(f"{key}: description mentions scopes in an unrecognised form")
    for scope in found:
        if not SCOPE_SHAPE.match(scope) or scope.split(":", 1)[1] not in actions:
            raise OpenApiError(f"{key}: {scope!r} is not resource:action")
    return _unique(found)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def render(table: ScopeTable) -> str:
    """The generated module's source, already in `ruff format` style."""
    out: list[str] = [
        "# Generated by scripts/gen_scopes.py from Instantly's OpenAPI document. DO NOT EDIT.",
        "# Regenerate: `make scopes` (python scripts/gen_scopes.py [PATH/TO/openapi-v2.json]).",
        '"""Instantly API v2 scope table, as the OpenAPI document states it.',
        "",
        "Use `instantly_guard.scopes`, not this module: it parses these strings into `Scope` values.",
        "",
        "- RESOURCES, ACTIONS: the vocabulary of key scopes (`all` is the wildcard in both places).",
        "- KEY_SCOPES: every scope a key can be created with (the enum of `POST /api-keys`).",
        '- OPERATIONS: "METHOD /path" (without /api/v2) -> the scopes the operation accepts, as',
        "  listed in its description; an empty tuple means the document lists none.",
        '"""',
        "",
        "from collections.abc import Mapping",
        "from typing import Final",
        "",
        f"SOURCE_TITLE: Final = {_quote(table.title)}",
        f"SOURCE_VERSION: Final = {_quote(table.version)}",
        # A hex digest looks like a key to secret scanners (the posture check runs one).
        "SOURCE_SHA256: Final = (",
        f"    {_quote(table.sha256)}  # pragma: allowlist secret",
        ")",
        "",
    ]
    out += _tuple("RESOURCES", table.resources)
    out += _tuple("ACTIONS", table.actions)
    out += _tuple("KEY_SCOPES", table.key_scopes)
    out.append("OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {")
    for key, scopes in table.operations:
        if scopes:
            out.append(f"    {_quote(key)}: (")
            out += [f"        {_quote(scope)}," for scope in scopes]
            out.append("    ),")
        else:
            out.append(f"    {_quote(key)}: (),")
    out.append("}")
    return "\n".join(out) + "\n"


def _tuple(name: str, values: Sequence[str]) -> list[str]:
    return [
        f"{name}: Final[tuple[str, ...]] = (",
        *(f"    {_quote(value)}," for value in values),
        ")",
        "",
    ]


def _quote(text: str) -> str:
    # json.dumps gives a double-quoted literal that Python reads back unchanged for the plain
    # ASCII found here; ruff format prefers double quotes, so no reformatting is needed.
    if not text.isascii():
        raise OpenApiError(f"non-ASCII text {text!r} in generated literal")
    return json.dumps(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("openapi", nargs="?", type=Path, default=DEFAULT_OPENAPI)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the output file is not up to date"
    )
    args = parser.parse_args(argv)
    try:
        doc, digest = load_document(args.openapi)
        table = extract(doc, digest)
    except (OSError, ValueError, OpenApiError) as exc:
        print(f"gen_scopes: {args.openapi}: {exc}", file=sys.stderr)
        return 2
    source = render(table)
    for resource in table.operation_only_resources:
        print(
            f"gen_scopes: note: operations require {resource}:* but keys cannot hold it "
            "(not in the POST /api-keys enum); only all:* grants them",
            file=sys.stderr,
        )
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != source:
            print(f"gen_scopes: {output} is out of date; run `make scopes`", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    output.write_text(source, encoding="utf-8")
    print(
        f"wrote {output}: {len(table.resources)} resources, {len(table.operations)} operations,"
        f" {len(table.unscoped)} without a listed scope"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
