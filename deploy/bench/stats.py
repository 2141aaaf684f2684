"""Summary statistics of per-iteration timings, defined as trtexec defines them.

Percentiles are nearest-rank on the sorted samples (trtexec: index = n - 1 - floor((1 - p/100) n),
which equals ceil(p n / 100) - 1); the median averages the two middle values for an even count.
Exact fractions avoid the float trap where (1 - 0.9) * 10 truncates to 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

PERCENTILES = (90, 95, 99)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of ascending `sorted_values` (p in [0, 100])."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    if not sorted_values:
        return math.inf
    n = len(sorted_values)
    exclude = math.floor((1 - Fraction(str(p)) / 100) * n)
    return sorted_values[max(n - 1 - exclude, 0)]


def median(sorted_values: list[float]) -> float:
    """Middle value; the mean of the two middle values for an even count."""
    if not sorted_values:
        return math.inf
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


@dataclass(frozen=True)
class Stats:
    """One metric's summary in milliseconds; cv = std / mean (population std, as trtexec's coefficient)."""

    count: int
    min: float
    max: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    std: float
    cv: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: list[float]) -> Stats:
    if not values:
        raise ValueError("no samples to summarize")
    s = sorted(values)
    n = len(s)
    mean = math.fsum(s) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in s) / n)
    p90, p95, p99 = (percentile(s, p) for p in PERCENTILES)
    return Stats(n, s[0], s[-1], mean, median(s), p90, p95, p99, std, std / mean if mean > 0 else 0.0)


def throughput(batch: int, iterations: int, wall_s: float) -> float:
    """Images per second over the whole timed wall time (queries/s x batch, as trtexec reports it)."""
    return batch * iterations / wall_s if wall_s > 0 else 0.0
