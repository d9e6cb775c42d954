"""`instantly-guard --help` stays fast: building the parser imports no heavy dependency.

Each subcommand module's `register()` runs for every invocation, so its module top may import only
what argparse needs; the Instantly client (httpx, pydantic), Google's client libraries and
detect-secrets are imported inside the handlers.
"""

from __future__ import annotations

import json
import subprocess
import sys

from instantly_guard.check.model import Severity
from instantly_guard.cli import check as check_cli
from instantly_guard.cli import localstack as localstack_cli
from instantly_guard.localstack.stack import DEFAULT_BASE_PORT

HEAVY = (
    "httpx",
    "pydantic",
    "grpc",
    "detect_secrets",
    "functions_framework",
    "flask",
    "google.api_core",
    "google.protobuf",
    "google.cloud.secretmanager",
    "google.cloud.pubsub",
    "google.cloud.logging",
    "instantly_guard.instantly.client",
)

_PROBE = """
import json, sys
from instantly_guard.cli import build_parser
build_parser()
print(json.dumps(sorted(sys.modules)))
"""


def test_building_the_parser_imports_no_heavy_dependency() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == [], f"build_parser() imported {heavy[:10]}: import them in the handler"


def test_check_fail_on_choices_follow_the_severity_enum() -> None:
    assert (*[str(s) for s in reversed(Severity)], "none") == check_cli.FAIL_ON_CHOICES


def test_localstack_default_port_follows_the_stack() -> None:
    assert localstack_cli.DEFAULT_BASE_PORT == DEFAULT_BASE_PORT
