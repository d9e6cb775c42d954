"""What a rotation, a housekeeping pass and a sweep report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from instantly_guard.rotation.errors import describe


class Outcome(StrEnum):
    ROTATED = "rotated"  # a rotation ran to Finish in this call
    DUPLICATE = "duplicate"  # this event's rotation (or a later one) already finished
    SWEPT = "swept"  # a sweep found no rotation to resume; it revoked and destroyed what was due
    NOT_MANAGED = "not_managed"  # the secret does not carry our label
    TOO_SOON = "too_soon"  # a later event, but sooner after the last rotation than its interval


@dataclass(slots=True)
class RotationResult:
    secret: str
    outcome: Outcome
    rotation_id: str | None = None
    current_version: str | None = None
    revoked_versions: list[str] = field(default_factory=list)
    destroyed_versions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HousekeepingResult:
    revoked_versions: list[str] = field(default_factory=list)
    destroyed_versions: list[str] = field(default_factory=list)
    current_version: str | None = None


def describe_results(results: Mapping[str, RotationResult | Exception]) -> dict[str, Any]:
    """A JSON-able summary of a sweep."""
    summary: dict[str, Any] = {}
    for name, item in results.items():
        if isinstance(item, Exception):
            summary[name] = {"error": describe(item)}
        else:
            summary[name] = {
                "outcome": item.outcome.value,
                "current_version": item.current_version,
                "revoked_versions": item.revoked_versions,
                "destroyed_versions": item.destroyed_versions,
            }
    return summary
