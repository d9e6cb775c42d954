"""Bulk lead exports: data leaving the workspace."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from instantly_guard.detections.base import detection
from instantly_guard.detections.model import Config, Event, Hit, Severity
from instantly_guard.detections.rules.mfa import LOOKBACK, bursts, person
from instantly_guard.detections.text import plural, who
from instantly_guard.vocabulary import ActivityType

LEAD_EXPORTED = ActivityType.LEAD_EXPORTED


@detection(
    "audit.lead-export-volume",
    title="Lead exports above the threshold",
    severity=Severity.MEDIUM,
    technique="T1213",
    activities=(LEAD_EXPORTED,),
    lookback=LOOKBACK,
    joins=lambda config: config.lead_export_window,
    fix=(
        "Ask the user what the export was for; if it was not sanctioned, end their sessions, "
        "rotate their password, and review who else they shared access with."
    ),
    help=(
        "Lead exports (type 34) copy contacts out of the workspace. One user exporting more "
        "than DETECT_LEAD_EXPORT_THRESHOLD leads in exports no further apart than "
        "DETECT_LEAD_EXPORT_WINDOW is the signature of a departing employee or a hijacked "
        "account. An export whose count Instantly leaves out counts as one lead."
    ),
)
def lead_export_volume(events: Sequence[Event], config: Config) -> list[Hit]:
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_user[person(event)].append(event)
    hits = []
    for user, exports in by_user.items():
        for group in bursts(exports, config.lead_export_window):
            total = 0
            for index, event in enumerate(group):
                total += max(1, int(event.affected_count or 0))
                if total >= config.lead_export_threshold:
                    counted = group[: index + 1]
                    hits.append(
                        Hit(
                            f"{who(group[0])} exported {total} leads in "
                            f"{plural(len(counted), 'export')} between "
                            f"{group[0].timestamp:%Y-%m-%d %H:%M} and "
                            f"{event.timestamp:%Y-%m-%d %H:%M} UTC "
                            f"(threshold {config.lead_export_threshold})",
                            f"user/{group[0].user_id or '?'}",
                            tuple(e.id for e in counted),
                            f"{user}:{group[0].id}",
                            group[0].timestamp,
                            event.timestamp,
                            user,
                        )
                    )
                    break
    return hits


RULES = (lead_export_volume,)
