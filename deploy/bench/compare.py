"""Dense and pruned measured interleaved (A B A B ...) so drift and neighbours' load hit both alike.

The timed duration and the iteration minimum are split over the rounds; each round yields one median per model and one
pruned/dense ratio. The reported ratio is the median of the per-round ratios, with their p10-p90 spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cplitool.deploy.bench.spread import interval
from cplitool.deploy.bench.stats import median, summarize
from cplitool.deploy.bench.timing import Measurement, Samples, TimingConfig, measurement, primary_metric, run_samples
from cplitool.deploy.runners.base import Runner


@dataclass
class Ratio:
    """numerator/denominator of the per-round medians of the primary metric."""

    metric: str
    rounds: list[float]

    @property
    def median(self) -> float:
        return median(sorted(self.rounds))

    def to_dict(self) -> dict[str, Any]:
        s = summarize(self.rounds)
        spread = interval(self.rounds)
        return {
            "metric": self.metric,
            "median": self.median,
            "p10": spread.low,
            "p90": spread.high,
            "min": s.min,
            "max": s.max,
            "std": s.std,
            "cv": s.cv,
            "rounds": self.rounds,
        }


@dataclass
class Comparison:
    measurements: dict[str, Measurement]
    round_medians: dict[str, list[float]]
    ratio: Ratio | None

    def measurement_rows(self, key: dict[str, Any], sources: dict[str, str]) -> list[dict[str, Any]]:
        """One bench.json 'measurements' row per model: the key, then every metric's statistics in ms."""
        rows = []
        for name, meas in self.measurements.items():
            d = meas.to_dict()
            stats = {f"{k}_ms": v for k, v in d.pop("stats_ms").items()}
            rows.append(
                {
                    **key,
                    "model": name,
                    "source": sources.get(name, ""),
                    "status": "ok",
                    **stats,
                    "round_medians_ms": self.round_medians[name],
                    "unstable": not interval(self.round_medians[name], meas.primary.median).stable,
                    **d,
                }
            )
        return rows

    def comparison_row(self, key: dict[str, Any], macs_ratio: float | None) -> dict[str, Any]:
        """The bench.json 'comparisons' row: pruned/dense ratio with its spread, beside the MACs ratio;
        "unstable" when the paired per-round ratios spread beyond cplitool.deploy.bench.spread.SPREAD_LIMIT."""
        assert self.ratio is not None
        flag = not interval(self.ratio.rounds).stable
        return {**key, "ratio": self.ratio.to_dict(), "macs_ratio": macs_ratio, "unstable": flag}


def interleaved(
    runners: dict[str, Runner],
    inputs: dict[str, np.ndarray],
    cfg: TimingConfig,
    repeats: int,
    ratio: tuple[str, str] | None = ("pruned", "dense"),
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] | None = None,
) -> Comparison:
    """Measure active `runners` round-robin `repeats` times; pool every round's samples per runner.
    The ratio is of the primary metric: GPU compute, else CPU time when `cpu_clock` is given, else latency."""
    per_round = replace(cfg, min_duration_s=cfg.min_duration_s / repeats, min_iters=-(-cfg.min_iters // repeats))
    pooled = {name: Samples() for name in runners}
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            s = run_samples(runner, inputs[name], per_round, clock, cpu_clock)
            metric = primary_metric([m for m, v in s.values.items() if v])
            medians[name].append(median(sorted(s.values[metric])))
            pooled[name].extend(s)
    batch = {name: int(x.shape[0]) for name, x in inputs.items()}
    results = {name: measurement(batch[name], pooled[name]) for name in runners}
    r = None
    if ratio is not None:
        num, den = ratio
        metric = results[num].primary_metric
        r = Ratio(metric, [a / b for a, b in zip(medians[num], medians[den], strict=True)])
    return Comparison(results, medians, r)
