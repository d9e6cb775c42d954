"""Every detection rule against its sample events (files under samples/<rule id>/): each file
in `fires/` must make the rule find something, each in `does_not_fire/` nothing.

A sample is `{"description", "config"?, "entries": [...]}`: `entries` are log entries in the
exported audit log's shape (the JSONL sink's lines: Instantly's entries, and the inventory's
change entries), `config` overrides `Config` fields (durations in seconds).
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from instantly_guard.detections import ALL_DETECTIONS, DETECTIONS_BY_ID, Config
from instantly_guard.detections.payload import event_from_entry

SAMPLES = Path(__file__).parent / "samples"
KINDS = ("fires", "does_not_fire")


def _config(overrides: dict[str, Any]) -> Config:
    known = {f.name: f for f in fields(Config)}
    values: dict[str, Any] = {}
    for name, raw in overrides.items():
        assert name in known, f"unknown config field {name!r}"
        current = getattr(Config(), name)
        value = raw
        if isinstance(current, timedelta):
            value = timedelta(seconds=raw)
        elif isinstance(current, tuple):
            value = tuple(raw)
        elif isinstance(current, frozenset):
            value = frozenset(raw)
        values[name] = value
    return replace(Config(), **values)


def _samples() -> list[Any]:
    cases = []
    for path in sorted(SAMPLES.glob("*/*/*.json")):
        rule_id, kind = path.parent.parent.name, path.parent.name
        cases.append(pytest.param(rule_id, kind, path, id=f"{rule_id}/{kind}/{path.stem}"))
    return cases


@pytest.mark.parametrize(("rule_id", "kind", "path"), _samples())
def test_sample(rule_id: str, kind: str, path: Path) -> None:
    assert kind in KINDS, f"{path}: the folder must be one of {KINDS}"
    rule = DETECTIONS_BY_ID.get(rule_id)
    assert rule is not None, f"{path}: no rule {rule_id!r}"
    sample = json.loads(path.read_text(encoding="utf-8"))
    assert sample.get("description"), f"{path}: say what the sample shows"
    events = sorted(
        (event_from_entry(e) for e in sample["entries"]), key=lambda e: (e.timestamp, e.id)
    )
    hits = rule(events, _config(sample.get("config", {})))
    if kind == "fires":
        assert hits, f"{path.name}: {sample['description']} -- expected a finding, got none"
        ids = {e.id for e in events}
        for hit in hits:
            assert set(hit.entry_ids) <= ids
            assert hit.entry_ids, "a finding rests on at least one audit entry"
    else:
        assert not hits, f"{path.name}: {sample['description']} -- unexpected {hits}"


@pytest.mark.parametrize("rule", ALL_DETECTIONS, ids=lambda r: r.id)
def test_every_rule_has_samples_that_fire_and_that_do_not(rule: Any) -> None:
    for kind in KINDS:
        assert list((SAMPLES / rule.id / kind).glob("*.json")), f"{rule.id}: no {kind} sample"


def test_every_sample_folder_names_a_rule() -> None:
    assert {p.name for p in SAMPLES.iterdir() if p.is_dir()} <= set(DETECTIONS_BY_ID)


@pytest.mark.parametrize("rule", ALL_DETECTIONS, ids=lambda r: r.id)
def test_rule_metadata_is_complete(rule: Any) -> None:
    assert rule.fix
    assert rule.help
    assert rule.title
    assert rule.activities or rule.changes
    if rule.technique is not None:
        assert rule.technique.startswith("T")
