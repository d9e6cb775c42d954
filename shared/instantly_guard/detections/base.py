"""What a detection rule is, and the decorator that declares one beside its function.

A rule function receives the events of a window (oldest first; the rule keeps only the kinds it
declares in `activities`/`changes`) and the `Config`, and returns its `Hit`s. It must be pure
and must give an incident the same `incident` id whichever window it is seen in, as long as the
window holds the incident's first entry: that is what makes a finding fire once. A windowed rule
whose window may show only part of an incident (entries written out of time order) also names
whose it is (`Hit.series`) and declares `joins`, so the detector can tell the rest of a fired
incident from a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from instantly_guard.detections.model import Config, Event, Finding, Hit, Severity

DetectFunction = Callable[[Sequence[Event], Config], list[Hit]]
JoinGap = Callable[[Config], timedelta]


@dataclass(frozen=True, slots=True)
class DetectionRule:
    """A rule: metadata, the entries it reads, how far back it looks, and its function."""

    id: str
    title: str
    severity: Severity
    technique: str | None
    fix: str
    help: str
    activities: frozenset[int]
    changes: frozenset[str]
    lookback: timedelta
    detect: DetectFunction
    joins: JoinGap | None = None
    """Windowed rules: how far apart two hits of one series may be and still be one incident
    (the burst gap; zero: their spans must overlap). None: each hit is its own incident."""

    def reads(self, event: Event) -> bool:
        """Whether the rule looks at `event`. `changes` holds inventory change names, or
        `<object>.*` for every change of one object type."""
        if event.inventory is not None:
            change = event.inventory.change
            return change in self.changes or f"{change.split('.', 1)[0]}.*" in self.changes
        return event.activity_type in self.activities

    def __call__(self, events: Sequence[Event], config: Config) -> list[Hit]:
        return self.detect([e for e in events if self.reads(e)], config)

    def findings(
        self, events: Sequence[Event], config: Config, *, now: datetime, mode: str = "export"
    ) -> list[Finding]:
        return [
            Finding(self.id, self.title, self.severity, self.technique, self.fix, hit, now, mode)
            for hit in self(events, config)
        ]


def detection(
    rule_id: str,
    *,
    title: str,
    severity: Severity,
    fix: str,
    help: str,
    technique: str | None = None,
    activities: Sequence[int] = (),
    changes: Sequence[str] = (),
    lookback: timedelta = timedelta(0),
    joins: JoinGap | None = None,
) -> Callable[[DetectFunction], DetectionRule]:
    """Declare a rule: `@detection("audit.totp-disabled", ...)` above its function."""

    def wrap(function: DetectFunction) -> DetectionRule:
        return DetectionRule(
            rule_id,
            title,
            severity,
            technique,
            fix,
            help,
            frozenset(activities),
            frozenset(changes),
            lookback,
            function,
            joins,
        )

    return wrap


def single(event: Event, message: str, subject: str | None = None) -> Hit:
    """A hit resting on one entry (its own incident)."""
    return Hit(
        message,
        subject or f"audit-log/{event.id}",
        (event.id,),
        event.id,
        event.timestamp,
        event.timestamp,
    )
