"""A median with its spread over interleaved rounds, and the rule that calls a number unstable.

Each round of an interleaved bench yields one median per model and one paired pruned/dense ratio; the
spread is the nearest-rank p10 to p90 of those per-round values (with few rounds, their min to max). A
number whose spread is wider than SPREAD_LIMIT of its median is marked "unstable": it moved between
rounds by more than a pruning gain is worth. (trtexec's per-iteration coefficient-of-variation warning
stays in bench.json's warnings; on a shared CPU a few preempted iterations trip it on every row, while
the medians the tables show are robust to them.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cplitool.deploy.bench.stats import median, percentile

SPREAD_LIMIT = 0.10  # p10-p90 width above 10% of the median: the number moves more than a pruning gain
LOW, HIGH = 10, 90


@dataclass(frozen=True)
class Interval:
    """Median and p10-p90 of per-round values."""

    median: float
    low: float
    high: float
    rounds: int

    @property
    def width(self) -> float:
        """(p90 - p10) / median: the relative spread."""
        return (self.high - self.low) / self.median if self.median > 0 else float("inf")

    @property
    def stable(self) -> bool:
        return self.width <= SPREAD_LIMIT

    def text(self, fmt: str = ".3f") -> str:
        """'0.842 (0.81-0.87)': the median, then its spread."""
        return f"{format(self.median, fmt)} ({format(self.low, fmt)}-{format(self.high, fmt)})"

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, f"p{LOW}": self.low, f"p{HIGH}": self.high, "rounds": self.rounds}


def interval(values: list[float], center: float | None = None) -> Interval:
    """Nearest-rank p10-p90 of per-round values around their median (or `center`, e.g. a pooled median)."""
    if not values:
        raise ValueError("no rounds to summarize")
    s = sorted(values)
    return Interval(median(s) if center is None else center, percentile(s, LOW), percentile(s, HIGH), len(s))


def latency_interval(measurement: dict[str, Any]) -> Interval:
    """The row's median over all its iterations, with the spread of its per-round medians."""
    pooled = float(measurement[f"{measurement['primary_metric']}_ms"]["median"])
    return interval([float(v) for v in measurement.get("round_medians_ms") or [pooled]], pooled)


def ratio_interval(comparison: dict[str, Any]) -> Interval:
    """Spread of a bench.json comparison row's pruned/dense ratio over its paired per-round ratios."""
    return interval([float(v) for v in comparison["ratio"]["rounds"]])
