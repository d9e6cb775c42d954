"""The deployable zips: reproducible, complete, and runnable outside the repository.

A bundle that imports only because the repo's `.venv` or `shared/` happens to be on the path would
fail at deploy time on Google's side; here it fails first: each bundle is unpacked into an empty
directory, given a fresh virtual environment holding only its own `requirements.txt`, and asked for
its entry point exactly as functions-framework will ask for it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"

# The contract with the function issues and with terraform/functions.tf, stated independently of
# scripts/bundle.py so that a rename on either side shows up here.
ENTRY_POINTS = {
    "webhook": ("receive_webhook", "http"),
    "audit_export": ("export_audit_logs", "http"),
    # Deployed behind a Pub/Sub push subscription (docs/deploy.md): an HTTP function that reads
    # the raw push envelope itself (functions-framework's conversion refuses one without data).
    "key_rotation": ("rotate_api_key", "http"),
    "reconcile": ("reconcile_webhooks", "http"),
    "inventory": ("run_inventory", "http"),
}


def _load_bundle_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bundle_script", ROOT / "scripts" / "bundle.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


bundle_script = _load_bundle_script()
PRESENT = [name for name in ENTRY_POINTS if (ROOT / "functions" / name / "main.py").is_file()]


def _needs_main(function: str) -> None:
    if function not in PRESENT:
        pytest.skip(f"functions/{function}/main.py has not landed yet")


def _build(out: Path) -> dict[str, Path]:
    if not PRESENT:
        return {}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bundle.py"), "--out", str(out), *PRESENT],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in PRESENT:
        assert f"{name}.zip" in result.stdout
        assert "sha256=" in result.stdout
    return {name: out / f"{name}.zip" for name in PRESENT}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _build(tmp_path_factory.mktemp("dist"))


def test_bundle_script_and_terraform_agree_on_entry_points() -> None:
    # The script discovers functions/*/main.py and reads each entry point from its decorator.
    assert {
        name: entry for name, (entry, _) in ENTRY_POINTS.items()
    } == bundle_script.discover_functions()


def test_bundles_print_their_module_and_requirement_counts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bundle.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(PRESENT)
    for line in lines:
        assert re.search(r"\.zip +\d+ modules +\d+ requirements +[\d,]+ bytes +sha256=", line), line


def _names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def _pins(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("requirements.txt").decode().splitlines()
    return {line.split("==", 1)[0].lower() for line in lines if not line.startswith("--")}


def test_webhook_bundle_holds_only_what_the_webhook_imports(bundles: dict[str, Path]) -> None:
    _needs_main("webhook")
    names = _names(bundles["webhook"])
    for package in ("cli", "localstack", "check", "audit", "rotation", "instantly", "scopes"):
        assert not any(n.startswith(f"instantly_guard/{package}/") for n in names), package
    assert "instantly_guard/webhook/testing.py" not in names
    assert {"instantly_guard/webhook/handler.py", "instantly_guard/publish/gcp.py"} <= names
    pins = _pins(bundles["webhook"])
    assert {"functions-framework", "google-cloud-pubsub"} <= pins
    assert (
        not {
            "pydantic",  # the payload is validated by hand: pydantic costs every cold start
            "detect-secrets",
            "google-cloud-storage",
            "google-cloud-secret-manager",
            "google-cloud-logging",
            "httpx",
        }
        & pins
    )


def test_rotation_bundle_has_no_audit_or_check_code(bundles: dict[str, Path]) -> None:
    _needs_main("key_rotation")
    names = _names(bundles["key_rotation"])
    for package in ("cli", "localstack", "check", "audit"):
        assert not any(n.startswith(f"instantly_guard/{package}/") for n in names), package
    pins = _pins(bundles["key_rotation"])
    assert "google-cloud-secret-manager" in pins
    assert not {"google-cloud-storage", "google-cloud-pubsub", "detect-secrets"} & pins


def test_a_check_rule_change_leaves_the_webhook_bundle_alone(tmp_path: Path) -> None:
    _needs_main("webhook")
    _needs_main("audit_export")
    source = tmp_path / "src"
    shutil.copytree(ROOT / "functions", source / "functions", ignore=_BYTECODE)
    shutil.copytree(ROOT / "shared", source / "shared", ignore=_BYTECODE)
    exported = bundle_script.export_requirements(str(UV))

    def build(out: str) -> dict[str, str]:
        built = bundle_script.build(
            tmp_path / out,
            ["webhook", "audit_export"],
            functions_dir=source / "functions",
            shared=source / "shared",
            exported=exported,
        )
        return {bundle.name: bundle.sha256 for bundle in built}

    before = build("before")
    rule = source / "shared" / "instantly_guard" / "check" / "rules" / "keys.py"
    rule.write_text(rule.read_text() + "\n# a changed rule\n")
    after = build("after")

    assert after["webhook"] == before["webhook"]
    assert after["audit_export"] != before["audit_export"]


_BYTECODE = shutil.ignore_patterns("__pycache__", "*.pyc")


def test_import_graph_follows_lazy_imports_and_skips_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import json\n"
        "from . import sibling\n"
        "from .sub import thing\n"
        "if TYPE_CHECKING:\n"
        "    from instantly_guard.cli import main\n"
        "else:\n"
        "    import yaml\n"
        "def later():\n"
        "    from google.cloud import pubsub_v1\n"
    )
    names = bundle_script.imported_names(source, "pkg.mod", is_package=False)
    assert {"json", "pkg.sibling", "pkg.sub", "pkg.sub.thing", "yaml"} <= names
    assert {"google.cloud", "google.cloud.pubsub_v1"} <= names
    assert not any(name.startswith("instantly_guard.cli") for name in names)


def test_import_graph_refuses_a_computed_module_name() -> None:
    source = "import importlib\ndef f(name):\n    return importlib.import_module(name)\n"
    with pytest.raises(bundle_script.BundleError, match="computed module name"):
        bundle_script.imported_names(source, "pkg.mod", is_package=False)


@pytest.mark.parametrize("module", ["instantly_sandbox", "instantly_guard.cli.check"])
def test_a_function_reaching_a_development_part_is_refused(tmp_path: Path, module: str) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "main.py").write_text(f"def handler():\n    import {module}\n")
    with pytest.raises(bundle_script.BundleError, match="must never ship"):
        bundle_script.import_graph(tmp_path / "f" / "main.py", ROOT / "shared")


def test_lock_closure_follows_extras() -> None:
    lock = {
        "package": [
            {"name": "a", "dependencies": [{"name": "b", "extra": ["grpc"]}]},
            {"name": "b", "optional-dependencies": {"grpc": [{"name": "c"}]}},
            {"name": "c"},
            {"name": "unused"},
        ]
    }
    assert bundle_script.lock_closure(["a"], lock) == {"a", "b", "c"}


def test_same_sources_give_the_same_bytes(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not PRESENT:
        pytest.skip("no functions/*/main.py has landed yet")
    # Two builds back to back, into two empty directories: nothing carried over between them.
    first = _build(tmp_path_factory.mktemp("dist-first"))
    second = _build(tmp_path_factory.mktemp("dist-second"))
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name


def test_zip_writer_is_deterministic_whatever_the_input_order() -> None:
    entries = [("b.py", b"b"), ("a/__init__.py", b""), ("requirements.txt", b"x==1\n")]
    first = bundle_script.build_zip(entries)
    assert first == bundle_script.build_zip(list(reversed(entries)))
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == sorted(name for name, _ in entries)


def test_zip_writer_refuses_the_sandbox() -> None:
    with pytest.raises(bundle_script.BundleError, match="must never ship"):
        bundle_script.build_zip([("instantly_sandbox/__init__.py", b"")])


def test_requirements_must_be_pinned_and_carry_functions_framework() -> None:
    with pytest.raises(bundle_script.BundleError, match="not pinned"):
        bundle_script.normalise_requirements("functions-framework==3.0\nhttpx>=0.27\n")
    with pytest.raises(bundle_script.BundleError, match="functions-framework is missing"):
        bundle_script.normalise_requirements("httpx==0.28.1\n")
    with pytest.raises(bundle_script.BundleError, match="project itself"):
        bundle_script.normalise_requirements("functions-framework==3.0\ninstantly_guard==0.1.0\n")


@pytest.mark.parametrize("function", list(ENTRY_POINTS))
def test_bundle_holds_the_function_the_library_and_nothing_else(
    function: str, bundles: dict[str, Path]
) -> None:
    _needs_main(function)
    with zipfile.ZipFile(bundles[function]) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert "main.py" in names
    assert "requirements.txt" in names
    assert "instantly_guard/__init__.py" in names
    for name in names:
        parts = name.split("/")
        assert parts[0] != "instantly_sandbox", name
        assert not {"tests", "test", "__pycache__"} & set(parts), name
        assert not name.endswith((".pyc", ".pyo")), name
        assert not any(part.startswith(".") for part in parts), name
        assert name in {"requirements.txt"} or name.endswith((".py", "py.typed")), name
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        assert info.external_attr >> 16 == 0o100644, info.filename


@pytest.mark.parametrize("function", list(ENTRY_POINTS))
def test_requirements_are_the_locked_runtime_dependencies(
    function: str, bundles: dict[str, Path]
) -> None:
    _needs_main(function)
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {pkg["name"]: pkg["version"] for pkg in lock["package"] if "version" in pkg}
    with zipfile.ZipFile(bundles[function]) as archive:
        lines = archive.read("requirements.txt").decode().splitlines()
    assert lines[0] == "--require-hashes"
    pins = {}
    for line in lines[1:]:
        assert "--hash=sha256:" in line, line  # every artifact checked against uv.lock
        spec = line.split(";", maxsplit=1)[0].split(" --hash=", maxsplit=1)[0].strip()
        name, _, version = spec.partition("==")
        pins[name.lower().replace("_", "-")] = version
    assert "functions-framework" in pins
    assert "instantly-guard" not in pins
    # Nothing that only the dev group needs.
    assert not {"pytest", "ruff", "mypy", "hypothesis", "python-hcl2"} & set(pins)
    for name, version in pins.items():
        assert locked.get(name) == version, f"{name}=={version} is not what uv.lock pins"


def _install(requirements: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    """`pip install --require-hashes -r requirements` (uv's pip) into a fresh venv: every
    artifact must match a hash from uv.lock, as on Google's build."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    install = [
        str(UV),
        "pip",
        "install",
        "--quiet",
        "--require-hashes",
        "--python",
        str(python),
        "-r",
        str(requirements),
    ]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    # The uv cache already holds every locked wheel after `make setup`; go to the index only if not.
    offline = subprocess.run(
        [*install, "--offline"], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    if offline.returncode == 0:
        return offline
    return subprocess.run(
        install, env=env, capture_output=True, text=True, check=False, timeout=600
    )


def _venv_with_only(requirements: Path, venv: Path) -> Path:
    installed = _install(requirements, venv)
    assert installed.returncode == 0, installed.stderr
    return venv / "bin" / "python"


@pytest.mark.slow
def test_a_bundle_whose_artifact_hash_differs_from_the_lock_does_not_install(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """The same requirements that install above, with one hash changed (a replaced artifact on
    the index, as pip sees it): the install is refused."""
    _needs_main("webhook")
    with zipfile.ZipFile(bundles["webhook"]) as archive:
        lines = archive.read("requirements.txt").decode().splitlines()
    assert lines[0] == "--require-hashes"
    target = next(i for i, line in enumerate(lines) if line.startswith("anyio=="))
    lines[target] = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, lines[target])
    tampered = tmp_path / "requirements.txt"
    tampered.write_text("\n".join(lines) + "\n")
    refused = _install(tampered, tmp_path / "venv")
    assert refused.returncode != 0
    assert "hash" in refused.stderr.lower(), refused.stderr


# Runs inside the bundle's own venv, cwd = the unpacked bundle: loads the entry point the way
# functions-framework does on Cloud Run, then sends one request through it on the local backend,
# so that the library's lazy imports (first request, not import time) are exercised too.
PROBE = """
import importlib.util, json, sys
function, entry = sys.argv[1], sys.argv[2]
import main
import functions_framework
from functions_framework import _function_registry
app = functions_framework.create_app(target=entry, source="main.py")
client = app.test_client()
import instantly_guard
smoke = {}
if function == "webhook":
    event = {"event_type": "bundle_smoke_test", "timestamp": "2026-01-01T00:00:00Z",
             "workspace": "w", "campaign_id": "c", "campaign_name": "n"}
    good = client.post("/", json=event, headers={"x-webhook-secret": SECRET})
    forged = client.post("/", json=event, headers={"x-webhook-secret": "x" * len(SECRET)})
    smoke = {"accepted": good.status_code, "body": good.get_data(as_text=True),
             "forged": forged.status_code}
elif function in ("audit_export", "reconcile", "inventory"):
    answer = client.post("/", json={}, headers={"X-CloudScheduler-JobName": "smoke",
                                                "X-CloudScheduler-ScheduleTime": "2026-01-01T00:00:00Z"})
    smoke = {"status": answer.status_code, "body": answer.get_json(silent=True)}
else:
    # Exactly what the rotation push subscription sends for TOPIC_CONFIGURED: a Pub/Sub push
    # envelope, no ce- headers, and no `data` (proto3 JSON omits empty bytes).
    message = {"attributes": {"eventType": "TOPIC_CONFIGURED"}, "messageId": "1",
               "publishTime": "2026-01-01T00:00:00Z"}
    answer = client.post("/", json={"message": message, "subscription": "projects/p/subscriptions/s"})
    smoke = {"status": answer.status_code}
print(json.dumps({
    "callable": callable(getattr(main, entry, None)),
    "signature": _function_registry.REGISTRY_MAP.get(entry),
    "main": main.__file__,
    "library": instantly_guard.__file__,
    "sandbox_importable": importlib.util.find_spec("instantly_sandbox") is not None,
    "smoke": smoke,
}))
""".replace("SECRET", repr("s" * 40))


@pytest.mark.slow
@pytest.mark.parametrize("function", list(ENTRY_POINTS))
def test_bundle_runs_in_a_clean_venv_holding_only_its_requirements(
    function: str, bundles: dict[str, Path], tmp_path: Path
) -> None:
    _needs_main(function)
    assert UV.is_file(), "run `make setup` first: the test installs with the project's uv"
    source = tmp_path / "src"
    with zipfile.ZipFile(bundles[function]) as archive:
        archive.extractall(source)
    python = _venv_with_only(source / "requirements.txt", tmp_path / "venv")

    entry, signature = ENTRY_POINTS[function]
    env = {  # no PYTHONPATH, nothing from the repo; the local backend, nothing reaches out
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(tmp_path / "state"),
        "INSTANTLY_API_BASE": "http://127.0.0.1:9/api/v2",
        "INSTANTLY_WEBHOOK_SECRET": "s" * 40,
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [str(python), "-E", "-s", "-c", PROBE, function, entry],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["callable"], f"main.{entry} is missing or not callable"
    assert Path(probe["main"]).resolve().is_relative_to(source.resolve())
    assert Path(probe["library"]).resolve().is_relative_to(source.resolve())
    assert not probe["sandbox_importable"]
    assert probe["signature"] == signature, (
        f"{entry} must be decorated with @functions_framework.{signature}: see docs/deploy.md"
    )
    smoke = probe["smoke"]
    if function == "webhook":
        assert smoke["accepted"] == 200, smoke
        assert '"received"' in smoke["body"]
        assert smoke["forged"] == 401
    elif function in ("audit_export", "reconcile", "inventory"):
        # No key configured: an actionable configuration error, answered as JSON.
        assert smoke["status"] >= 400, smoke
        assert isinstance(smoke["body"], dict), smoke
    else:
        # Acknowledged (2xx): TOPIC_CONFIGURED needs no action and must never be retried.
        assert smoke["status"] == 200, smoke
