"""The spread the accuracy benchmarks report over seeds: a mean and its 95% Student-t half-width."""

from __future__ import annotations

import math
import statistics

from scipy import stats


def interval(values: list[float]) -> tuple[float, float | None]:
    """Mean and 95% t half-width with n - 1 degrees of freedom (None for one value: no spread to state)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    t = float(stats.t.ppf(0.975, len(values) - 1))
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))
