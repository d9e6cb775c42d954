"""Every sweep logs each managed secret's time since its last rotation: the overdue-rotation
alert (terraform/monitoring.tf, metric rotation_age) reads it from that line."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from rotation_helpers import MANAGED, World


def test_the_sweep_logs_how_long_ago_each_managed_secret_rotated(
    local_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    local_world.declare()
    local_world.rotator.handle(local_world.rotate_event())
    local_world.clock.advance(timedelta(days=3))

    with caplog.at_level(logging.INFO, logger="instantly_guard.rotation"):
        local_world.rotator.sweep()

    ages = {
        r.fields["secret"]: r.fields["rotation_age_seconds"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "rotation age"
    }
    assert MANAGED in ages
    assert timedelta(days=3) <= timedelta(seconds=ages[MANAGED]) <= timedelta(days=3, minutes=5)
