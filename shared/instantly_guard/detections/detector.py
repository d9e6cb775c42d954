"""Continuous evaluation: the rules over each batch an export writes, each incident once.

`Detector.relevant` picks the entries some rule reads (most of a batch is not: the payloads of
the rest are never parsed). `Detector.evaluate` adds them to what the state kept from earlier
batches, runs every rule over that window, and returns the findings whose dedupe key has not
fired yet together with the state to save once they are written. Key changes (37, 38) made by a
managed rotation are told apart by `managed_rotations`, for the export to label them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from instantly_guard.detections.base import DetectionRule
from instantly_guard.detections.model import Config, Event, Finding
from instantly_guard.detections.payload import event_from_payload, is_inventory
from instantly_guard.detections.registry import ALL_DETECTIONS
from instantly_guard.detections.rules.keys import (
    KEY_CHANGES,
    affected_id,
    affected_name,
    key_names,
    outside_rotation,
)
from instantly_guard.detections.state import SEEN, DetectionState, StateStore

_TS = "_ts"


def _now() -> datetime:
    return datetime.now(UTC)


class Detector:
    """The rule base in continuous mode, with its state in `store`."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        rules: Sequence[DetectionRule] = ALL_DETECTIONS,
        *,
        clock: Callable[[], datetime] = _now,
        mode: str = "export",
    ) -> None:
        self.config = config
        self.mode = mode  # each finding's `mode`: `export`, or `inventory` (its change entries)
        self.store = store
        self.rules = tuple(rules)
        self._clock = clock
        self.activities: frozenset[int] = frozenset().union(*(r.activities for r in self.rules))
        # Windowed rules need the trail as far back as their longest burst gap.
        self.lookback = max(
            [r.lookback for r in self.rules] + [config.mfa_burst_gap, config.lead_export_window]
        )
        # Only their entries are kept between batches: a one-entry rule has judged its entry
        # once evaluated (key names seen go to `state.names`).
        self.windowed: frozenset[int] = frozenset().union(
            *(r.activities for r in self.rules if r.lookback > timedelta(0))
        )

    def relevant(self, insert_id: str, payload: Mapping[str, Any]) -> bool:
        if is_inventory(payload):
            return True
        activity = payload.get("activity_type")
        return isinstance(activity, int) and activity in self.activities

    def events(self, entries: Iterable[tuple[str, Mapping[str, Any], datetime]]) -> list[Event]:
        return [event_from_payload(i, p, t) for i, p, t in entries]

    def managed_rotations(self, events: Sequence[Event], state: DetectionState) -> set[str]:
        """Ids of the key creations and deletions among `events` that a managed rotation made."""
        changes = [e for e in events if e.activity_type in KEY_CHANGES]
        if not changes:
            return set()
        config = self._config(state)
        names = key_names(config.key_names, changes)
        return {e.id for e in changes if outside_rotation(e, names, config) is None}

    def _config(self, state: DetectionState) -> Config:
        return replace(self.config, key_names={**state.names, **self.config.key_names})

    def evaluate(
        self, entries: Sequence[tuple[str, Mapping[str, Any], datetime]], state: DetectionState
    ) -> tuple[list[Finding], DetectionState]:
        """New findings over `entries` (insert id, payload, log time: relevant ones only) and
        the earlier window in `state`; the state to save after writing them."""
        now = self._clock()
        for insert_id, payload, timestamp in entries:
            kept = dict(payload)
            kept[_TS] = timestamp.isoformat()
            kept[SEEN] = now.isoformat()
            state.events[insert_id] = kept
        window = sorted(
            (event_from_payload(i, p, _parse(p.get(_TS))) for i, p in state.events.items()),
            key=lambda e: (e.timestamp, e.id),
        )
        for event in window:
            if event.activity_type in KEY_CHANGES:
                key_id, name = affected_id(event.metadata), affected_name(event.metadata)
                if key_id and name:
                    state.names.setdefault(key_id, name)
        config = self._config(state)
        findings = []
        for rule in self.rules:
            for finding in rule.findings(window, config, now=now, mode=self.mode):
                if _seen_before(rule, finding, state, config, now):
                    state.fired.setdefault(finding.key, now.isoformat())
                    continue
                state.fired[finding.key] = now.isoformat()
                findings.append(finding)
        if window:
            state.events = {
                k: v for k, v in state.events.items() if v.get("activity_type") in self.windowed
            }
            state.prune(newest=window[-1].timestamp, lookback=self.lookback, now=now)
        return findings, state


def _seen_before(
    rule: DetectionRule, finding: Finding, state: DetectionState, config: Config, now: datetime
) -> bool:
    """Whether `finding` is an incident that already fired: its dedupe key, or (windowed rules)
    a fired incident of the same rule and series its span meets. Entries written out of time
    order show one burst as a partial group first, then the whole under an earlier first entry
    (another key): the span, not the key, says it is the same burst. Either way the span is
    recorded, so the incident grows with every entry seen."""
    hit = finding.hit
    met = False
    if rule.joins is not None and hit.series is not None:
        span = (hit.first_at, hit.last_at)
        met = state.join(rule.id, hit.series, span, rule.joins(config), now)
    return met or finding.key in state.fired


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def dumps(finding: Finding) -> str:
    return json.dumps(finding.to_json(), ensure_ascii=False, separators=(",", ":"))
