"""Every detection rule, in report order, and by id."""

from __future__ import annotations

from types import MappingProxyType

from instantly_guard.detections.base import DetectionRule
from instantly_guard.detections.rules import inventory, keys, leads, mfa, webhooks

ALL_DETECTIONS: tuple[DetectionRule, ...] = (
    *mfa.RULES,
    *keys.RULES,
    *webhooks.RULES,
    *leads.RULES,
    *inventory.RULES,
)

DETECTIONS_BY_ID = MappingProxyType({r.id: r for r in ALL_DETECTIONS})
