"""One vocabulary of Instantly's activity and event types, generated from the OpenAPI document
where it can be, and every table that names them agreeing with it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from instantly_guard import vocabulary
from instantly_guard.audit.severity import ACTIVITIES
from instantly_guard.webhook.payload import KNOWN_EVENT_TYPES
from instantly_sandbox import audit as sandbox_audit
from instantly_sandbox import delivery as sandbox_delivery

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "spec" / "instantly-openapi-v2.json"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gen_vocabulary", ROOT / "scripts" / "gen_vocabulary.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_generated_module_is_fresh() -> None:
    fresh = _generator().render(json.loads(SPEC.read_text(encoding="utf-8")))
    generated = ROOT / "shared" / "instantly_guard" / "_vocabulary_generated.py"
    assert generated.read_text(encoding="utf-8") == fresh, "stale: run `make scopes`"


def test_every_activity_type_has_a_severity_and_no_other() -> None:
    assert set(ACTIVITIES) == {int(member) for member in vocabulary.ActivityType}


def test_the_sandbox_speaks_the_same_vocabulary() -> None:
    assert sandbox_audit.ACTIVITY_NAMES == vocabulary.ACTIVITY_DESCRIPTIONS
    assert sandbox_delivery.SUBSCRIBABLE_EVENT_TYPES == vocabulary.SUBSCRIBABLE_EVENT_TYPES


def test_the_receiver_knows_every_delivered_event_type() -> None:
    assert KNOWN_EVENT_TYPES == vocabulary.DELIVERED_EVENT_TYPES
    assert "link_clicked" in vocabulary.DELIVERED_EVENT_TYPES
    assert "email_link_clicked" not in vocabulary.DELIVERED_EVENT_TYPES
    assert vocabulary.SUBSCRIBE_ALL not in vocabulary.DELIVERED_EVENT_TYPES
