"""The row every benchmark reports: a measured value, and the baseline it is compared against."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measurement. `baseline` is measured in the same run; the table prints value/baseline."""

    name: str
    value: float
    unit: str
    baseline: float | None
    note: str

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, by the inclusive method."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
