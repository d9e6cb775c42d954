"""Build one self-contained, reproducible Cloud Functions source zip per function.

`python scripts/bundle.py` writes `dist/<function>.zip` for every function in FUNCTIONS. A bundle
holds the function's own `*.py` files (its `main.py` at the zip root), the `instantly_guard` package
(never the `instantly_sandbox` stand-in, never tests or bytecode) and a `requirements.txt` pinned
to the exact versions of `uv.lock` (`uv export --frozen`), without the project itself: the library
travels as source inside the zip, so the build on Google's side installs only third-party wheels.

The zip is deterministic: entries sorted, every timestamp 1980-01-01 00:00:00, every file mode
0644, a fixed compression level and no extra fields. The same sources give the same bytes, so the
content-addressed object name that Terraform derives from the zip's SHA-256 changes exactly when
code or a pinned dependency changes, and a redeploy happens then and only then.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: function directory name -> entry point (the Terraform module uses the same names).
FUNCTIONS: dict[str, str] = {
    "webhook": "receive_webhook",
    "audit_export": "export_audit_logs",
    "key_rotation": "rotate_api_key",
    "reconcile": "reconcile_webhooks",
}

LIBRARY = "instantly_guard"
FORBIDDEN_PACKAGES = ("instantly_sandbox",)
EXCLUDED_DIRS = frozenset({"__pycache__", "tests", "test", ".mypy_cache", ".pytest_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
REQUIRED_REQUIREMENT = "functions-framework"

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


def _included(path: Path, base: Path) -> bool:
    rel = path.relative_to(base)
    if any(part in EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
        return False
    return path.is_file() and not path.name.endswith(EXCLUDED_SUFFIXES)


def _library_files(shared: Path) -> Iterator[tuple[str, Path]]:
    package = shared / LIBRARY
    if not (package / "__init__.py").is_file():
        raise BundleError(f"{package} is not a package")
    for path in sorted(package.rglob("*")):
        if _included(path, shared):
            yield path.relative_to(shared).as_posix(), path


def _function_files(function_dir: Path) -> Iterator[tuple[str, Path]]:
    main = function_dir / "main.py"
    if not main.is_file():
        raise BundleError(f"{main} does not exist: nothing to deploy for {function_dir.name}")
    # Only Python sources beside main.py: a stray .env or notes file never ships.
    for path in sorted(function_dir.rglob("*.py")):
        if _included(path, function_dir):
            yield path.relative_to(function_dir).as_posix(), path


def export_requirements(uv: str, project: Path = ROOT) -> str:
    """Third-party requirements pinned by the lock, without dev tools and without the project."""
    command = [
        uv,
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-hashes",
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
    return normalise_requirements(result.stdout)


def _requirement_name(line: str) -> str:
    name = line.split(";", maxsplit=1)[0].split("==", maxsplit=1)[0]
    return name.strip().lower().replace("_", "-")


def normalise_requirements(text: str) -> str:
    """Keep one requirement per line, sorted; refuse anything not pinned to an exact version."""
    lines = sorted(
        {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")},
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
    return "\n".join(lines) + "\n"


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


def bundle_entries(
    function: str, functions_dir: Path, shared: Path, requirements: str
) -> list[tuple[str, bytes]]:
    entries = [
        (name, path.read_bytes()) for name, path in _function_files(functions_dir / function)
    ]
    entries += [(name, path.read_bytes()) for name, path in _library_files(shared)]
    entries.append(("requirements.txt", requirements.encode()))
    return entries


def build(
    out: Path,
    functions: Sequence[str] = tuple(FUNCTIONS),
    *,
    functions_dir: Path = ROOT / "functions",
    shared: Path = ROOT / "shared",
    requirements: str,
) -> list[Bundle]:
    out.mkdir(parents=True, exist_ok=True)
    bundles = []
    for function in functions:
        data = build_zip(bundle_entries(function, functions_dir, shared, requirements))
        path = out / f"{function}.zip"
        tmp = path.with_suffix(".zip.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        bundles.append(Bundle(function, path, len(data), hashlib.sha256(data).hexdigest()))
    return bundles


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "functions", nargs="*", metavar="FUNCTION", help=f"any of {list(FUNCTIONS)}"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument(
        "--functions-dir", type=Path, default=ROOT / "functions", help="where <function>/main.py is"
    )
    parser.add_argument(
        "--uv", default=os.environ.get("UV", str(ROOT / ".tools" / "bin" / "uv")), help="uv binary"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.functions) - set(FUNCTIONS))
    if unknown:
        parser.error(f"unknown function(s) {unknown}; choose from {list(FUNCTIONS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        requirements = export_requirements(args.uv)
        bundles = build(
            args.out,
            args.functions or tuple(FUNCTIONS),
            functions_dir=args.functions_dir,
            requirements=requirements,
        )
    except (BundleError, OSError, subprocess.SubprocessError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    for bundle in bundles:
        shown = bundle.path.relative_to(ROOT) if bundle.path.is_relative_to(ROOT) else bundle.path
        print(f"{shown}  {bundle.size:>9,} bytes  sha256={bundle.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
