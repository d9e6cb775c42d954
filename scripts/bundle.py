"""Build one self-contained, reproducible Cloud Functions source zip per function.

`python scripts/bundle.py` writes `dist/<function>.zip` for every `functions/<name>/main.py`. A
bundle holds what that function can import and nothing else:

- its own `*.py` files (its `main.py` at the zip root);
- the modules of `instantly_guard` reachable from `main.py` through the static import graph
  (every `import` statement anywhere in a module, lazy ones inside functions included, except
  those under `if TYPE_CHECKING:`), the `__init__.py` of every package on the way, and the data
  files (`py.typed`, ...) of those packages; never `instantly_sandbox`, tests or bytecode;
- a `requirements.txt` pinned to the exact versions of `uv.lock` for just the distributions those
  modules import, plus what those need (the lock's dependency graph, extras followed), plus
  functions-framework. The lines, with their environment markers and the lock's hashes, come
  from `uv export --frozen`; the file starts with `--require-hashes`, so pip (Google's build)
  installs only artifacts whose sha256 the lock recorded: a replaced artifact on the index, or a
  dependency the lock does not pin, fails the build instead of being deployed.

So a change to a check rule changes the audit export's zip (which runs the scheduled check) and
not the webhook's.

The zip is deterministic: entries sorted, every timestamp 1980-01-01 00:00:00, every file mode
0644, a fixed compression level and no extra fields. The same sources give the same bytes, so the
content-addressed object name that Terraform derives from the zip's SHA-256 changes exactly when
code or a pinned dependency changes, and a redeploy happens then and only then.

Run it with the project's virtual environment (`make bundle`): third-party imports are mapped to
distributions through the installed distributions' file lists.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]

LIBRARY = "instantly_guard"
FORBIDDEN_PACKAGES = ("instantly_sandbox",)
# Development parts a function must never reach (pyproject.toml's import contracts hold the
# library to the same rule).
FORBIDDEN_MODULES = ("instantly_sandbox", "instantly_guard.cli", "instantly_guard.localstack")
EXCLUDED_DIRS = frozenset({"__pycache__", "tests", "test", ".mypy_cache", ".pytest_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
REQUIRED_REQUIREMENT = "functions-framework"
_DECORATOR = re.compile(r"^functions_framework\.(http|cloud_event)$")

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
COMPRESS_LEVEL = 9


class BundleError(Exception):
    """A bundle cannot be built (missing entry point, unlocked dependency, ...)."""


@dataclass(frozen=True)
class Bundle:
    name: str
    path: Path
    size: int
    sha256: str
    modules: int
    requirements: int


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


def discover_functions(functions_dir: Path = ROOT / "functions") -> dict[str, str]:
    """function directory name -> entry point: the one function in `main.py` decorated with
    `@functions_framework.http` or `@functions_framework.cloud_event` (Terraform uses the same)."""
    found: dict[str, str] = {}
    for main in sorted(functions_dir.glob("*/main.py")):
        tree = ast.parse(main.read_text(encoding="utf-8"), filename=str(main))
        entries = [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
            and any(_DECORATOR.match(_decorator_name(d)) for d in node.decorator_list)
        ]
        if len(entries) != 1:
            raise BundleError(f"{main} must define exactly one entry point, found {entries}")
        found[main.parent.name] = entries[0]
    return found


def _included(path: Path, base: Path) -> bool:
    rel = path.relative_to(base)
    if any(part in EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
        return False
    return path.is_file() and not path.name.endswith(EXCLUDED_SUFFIXES)


def _under_type_checking(node: ast.If) -> bool:
    return ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def imported_names(source: str, module: str, *, is_package: bool) -> set[str]:
    """Dotted names a module may import when it runs: every import statement, at any depth,
    except under `if TYPE_CHECKING:`. `from a import b` yields `a` and `a.b` (b may be a module).
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in {"importlib.import_module", "import_module", "__import__"}
            and not (node.args and isinstance(node.args[0], ast.Constant))
        ):
            raise BundleError(
                f"{module} imports a computed module name (line {node.lineno}): the bundle "
                "cannot see what it needs; import it by name"
            )
        if isinstance(node, ast.If) and _under_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names if alias.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


@dataclass
class ImportGraph:
    """The first-party modules reachable from one entry point, and the third-party names they
    import (stdlib excluded)."""

    modules: dict[str, Path] = field(default_factory=dict)
    third_party: set[str] = field(default_factory=set)


def _find_module(name: str, roots: Sequence[Path]) -> tuple[Path, bool] | None:
    rel = Path(*name.split("."))
    for root in roots:
        if (root / rel / "__init__.py").is_file():
            return root / rel / "__init__.py", True
        if (root / rel).with_suffix(".py").is_file():
            return (root / rel).with_suffix(".py"), False
    return None


def import_graph(main: Path, shared: Path) -> ImportGraph:
    roots = (main.parent, shared)
    graph = ImportGraph()
    pending: list[tuple[str, Path, bool]] = [("main", main, False)]
    while pending:
        module, path, is_package = pending.pop()
        if module in graph.modules:
            continue
        graph.modules[module] = path
        source = path.read_text(encoding="utf-8")
        for name in sorted(imported_names(source, module, is_package=is_package)):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN_MODULES):
                raise BundleError(f"{path} imports {name}, which must never ship in a bundle")
            if _find_module(top, roots) is None:
                graph.third_party.add(name)
                continue
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                dotted = ".".join(parts[:depth])
                found = _find_module(dotted, roots)
                if found is not None and dotted not in graph.modules:
                    pending.append((dotted, *found))
    return graph


def _library_files(graph: ImportGraph, shared: Path) -> Iterator[tuple[str, Path]]:
    package = shared / LIBRARY
    if not (package / "__init__.py").is_file():
        raise BundleError(f"{package} is not a package")
    files: set[Path] = set()
    for path in graph.modules.values():
        if path.is_relative_to(shared):
            files.add(path)
            if path.name == "__init__.py":  # the package's data files travel with it
                files.update(
                    p
                    for p in path.parent.iterdir()
                    if p.suffix != ".py" and _included(p, shared) and p.is_file()
                )
    for path in sorted(files):
        yield path.relative_to(shared).as_posix(), path


def _function_files(function_dir: Path) -> Iterator[tuple[str, Path]]:
    main = function_dir / "main.py"
    if not main.is_file():
        raise BundleError(f"{main} does not exist: nothing to deploy for {function_dir.name}")
    # Only Python sources beside main.py: a stray .env or notes file never ships.
    for path in sorted(function_dir.rglob("*.py")):
        if _included(path, function_dir):
            yield path.relative_to(function_dir).as_posix(), path


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_distributions() -> dict[str, str]:
    """Dotted module or package name -> the installed distribution whose files hold it."""
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = _normalise(dist.metadata["Name"])
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".egg-info")):
                continue
            if file.name == "__init__.py":
                owners.setdefault(".".join(parts[:-1]), name)
            elif file.suffix in {".py", ".so", ".pyd"}:
                stem = file.name.split(".", 1)[0]
                owners.setdefault(".".join((*parts[:-1], stem)), name)
    return owners


def distributions_for(names: Iterable[str], owners: Mapping[str, str]) -> set[str]:
    """The distributions that provide these imports (the longest owned prefix of each)."""
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        for depth in range(len(parts), 0, -1):
            owner = owners.get(".".join(parts[:depth]))
            if owner is not None:
                found.add(owner)
                break
        else:
            # `from google.cloud import pubsub_v1` names the namespace `google.cloud` too: its
            # owner is whoever provides the names imported from it, resolved on their own.
            if any(owned.startswith(f"{name}.") for owned in owners):
                continue
            raise BundleError(f"no installed distribution provides `{name}`: add it to the project")
    return found


def lock_closure(roots: Iterable[str], lock: Mapping[str, Any]) -> set[str]:
    """`roots` and everything they need in uv.lock's dependency graph, extras followed."""
    packages = {_normalise(package["name"]): package for package in lock["package"]}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(_normalise(root), ()) for root in roots]
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        package = packages.get(name)
        if package is None:
            raise BundleError(f"{name} is needed but not in uv.lock")
        seen.add((name, extras))
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        pending.extend((_normalise(d["name"]), tuple(d.get("extra", ()))) for d in deps)
    return {name for name, _ in seen}


def export_requirements(uv: str, project: Path = ROOT) -> str:
    """Every third-party runtime requirement pinned by the lock (all extras, no dev tools, not
    the project): each bundle keeps the lines of the distributions it needs."""
    command = [
        uv,
        "export",
        "--frozen",
        "--no-dev",
        "--all-extras",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements-txt",
    ]
    result = subprocess.run(
        command, cwd=project, capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise BundleError(f"`{' '.join(command)}` failed:\n{result.stderr.strip()}")
    return result.stdout


def logical_lines(text: str) -> list[str]:
    """Requirement lines with their `\\` continuations joined (one line per requirement,
    hashes included), comments and blank lines dropped."""
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            joined.append(line)
    if pending.strip():
        joined.append(pending.strip())
    return joined


def _requirement_name(line: str) -> str:
    name = line.split(";", maxsplit=1)[0].split("==", maxsplit=1)[0]
    return _normalise(name.strip())


def select_requirements(exported: str, needed: set[str]) -> str:
    """The lines of `exported` whose distribution is in `needed`; every needed one must be there."""
    lines = [line for line in logical_lines(exported) if _requirement_name(line) in needed]
    missing = needed - {_requirement_name(line) for line in lines} - {"instantly-guard"}
    if missing:
        raise BundleError(f"not in the exported runtime requirements: {sorted(missing)}")
    return normalise_requirements("\n".join(lines))


REQUIRE_HASHES: Final = "--require-hashes"


def normalise_requirements(text: str) -> str:
    """Keep one requirement per line, sorted, after `--require-hashes`; refuse anything not pinned
    to an exact version or without a hash."""
    lines = sorted(
        {line for line in logical_lines(text) if line != REQUIRE_HASHES},
        key=lambda line: (_requirement_name(line), line),
    )
    unpinned = [line for line in lines if "==" not in line.split(";")[0]]
    if unpinned:
        raise BundleError(f"requirements not pinned to an exact version: {unpinned}")
    names = {_requirement_name(line) for line in lines}
    if REQUIRED_REQUIREMENT not in names:
        raise BundleError(f"{REQUIRED_REQUIREMENT} is missing from the exported requirements")
    if names & {"instantly-guard", "instantly-sandbox"}:
        raise BundleError("the project itself must not be a requirement of a bundle")
    unhashed = [_requirement_name(line) for line in lines if "--hash=" not in line]
    if unhashed:
        raise BundleError(f"requirements without a hash from uv.lock: {unhashed}")
    return "\n".join([REQUIRE_HASHES, *lines]) + "\n"


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so external_attr carries the mode below
    info.external_attr = FILE_MODE << 16
    return info


def build_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """Deterministic zip of (archive name, content) pairs."""
    items = sorted(entries)
    names = [name for name, _ in items]
    if len(names) != len(set(names)):
        raise BundleError(f"duplicate archive entries: {names}")
    for name in names:
        top = name.split("/", 1)[0]
        if top in FORBIDDEN_PACKAGES:
            raise BundleError(f"{name} must never ship in a function bundle")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compresslevel=COMPRESS_LEVEL) as archive:
        for name, content in items:
            archive.writestr(_zip_entry(name), content, compresslevel=COMPRESS_LEVEL)
    return buffer.getvalue()


@dataclass(frozen=True)
class Plan:
    """What one bundle will hold: archive entries, and how many modules and requirements."""

    entries: list[tuple[str, bytes]]
    modules: int
    requirements: int


def plan_bundle(
    function: str,
    functions_dir: Path,
    shared: Path,
    *,
    exported: str,
    lock: Mapping[str, Any],
    owners: Mapping[str, str],
) -> Plan:
    main = functions_dir / function / "main.py"
    function_files = list(_function_files(main.parent))
    graph = import_graph(main, shared)
    library = list(_library_files(graph, shared))
    needed = lock_closure(
        {REQUIRED_REQUIREMENT, *distributions_for(graph.third_party, owners)}, lock
    )
    requirements = select_requirements(exported, needed)
    entries = [(name, path.read_bytes()) for name, path in (*function_files, *library)]
    entries.append(("requirements.txt", requirements.encode()))
    modules = len(function_files) + sum(name.endswith(".py") for name, _ in library)
    count = sum(1 for line in requirements.splitlines() if not line.startswith("--"))
    return Plan(entries, modules, count)


def build(
    out: Path,
    functions: Sequence[str],
    *,
    functions_dir: Path = ROOT / "functions",
    shared: Path = ROOT / "shared",
    exported: str,
    lock_file: Path = ROOT / "uv.lock",
) -> list[Bundle]:
    out.mkdir(parents=True, exist_ok=True)
    lock = tomllib.loads(lock_file.read_text(encoding="utf-8"))
    owners = module_distributions()
    bundles = []
    for function in functions:
        plan = plan_bundle(
            function, functions_dir, shared, exported=exported, lock=lock, owners=owners
        )
        data = build_zip(plan.entries)
        path = out / f"{function}.zip"
        tmp = path.with_suffix(".zip.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        digest = hashlib.sha256(data).hexdigest()
        bundles.append(Bundle(function, path, len(data), digest, plan.modules, plan.requirements))
    return bundles


def _parse(argv: Sequence[str] | None, known: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("functions", nargs="*", metavar="FUNCTION", help=f"any of {list(known)}")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument(
        "--uv", default=os.environ.get("UV", str(ROOT / ".tools" / "bin" / "uv")), help="uv binary"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.functions) - set(known))
    if unknown:
        parser.error(f"unknown function(s) {unknown}; choose from {list(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        known = discover_functions()
    except (BundleError, OSError, SyntaxError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    args = _parse(argv, list(known))
    try:
        bundles = build(
            args.out, args.functions or list(known), exported=export_requirements(args.uv)
        )
    except (BundleError, OSError, SyntaxError, subprocess.SubprocessError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    for bundle in bundles:
        shown = bundle.path.relative_to(ROOT) if bundle.path.is_relative_to(ROOT) else bundle.path
        print(
            f"{shown}  {bundle.modules:>3} modules  {bundle.requirements:>3} requirements  "
            f"{bundle.size:>9,} bytes  sha256={bundle.sha256}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
