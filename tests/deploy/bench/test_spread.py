from __future__ import annotations

import numpy as np
import pytest

from cplitool.deploy.bench.compare import interleaved
from cplitool.deploy.bench.spread import SPREAD_LIMIT, interval, latency_interval, ratio_interval
from cplitool.deploy.bench.timing import TimingConfig
from cplitool.deploy.runners.callable_runner import CallableRunner
from tests.deploy.bench.fakes import FakeClock


def test_interval_is_nearest_rank_p10_p90_around_the_median() -> None:
    """Catches a spread taken as min-max or as p25-p75: with 11 values p10 and p90 are the 2nd and 10th."""
    iv = interval([float(v) for v in [10, 0, 9, 1, 8, 2, 7, 3, 6, 4, 5]])
    assert (iv.median, iv.low, iv.high, iv.rounds) == (5.0, 1.0, 9.0, 11)
    assert iv.width == pytest.approx(8 / 5)
    assert interval([2.0, 3.0], center=10.0).median == 10.0


def test_unstable_is_a_spread_wider_than_the_limit() -> None:
    """Catches the comparison turned round or the limit ignored."""
    assert SPREAD_LIMIT == 0.10
    assert interval([0.97, 1.0, 1.05]).stable  # 8% wide
    assert not interval([0.95, 1.0, 1.07]).stable  # 12% wide


def test_latency_interval_centres_on_the_pooled_median() -> None:
    row = {"primary_metric": "latency", "latency_ms": {"median": 1.0}, "round_medians_ms": [0.8, 1.0, 1.3]}
    iv = latency_interval(row)
    assert (iv.median, iv.low, iv.high) == (1.0, 0.8, 1.3) and not iv.stable


def drifting_runners(clock: FakeClock) -> dict[str, CallableRunner]:
    """Dense 2 ms and pruned 1 ms per call, both slowed 2x after every round: load that drifts."""
    load, calls = {"factor": 1.0}, {"dense": 0, "pruned": 0}

    def runner(name: str, ms: float) -> CallableRunner:
        def step(x: np.ndarray) -> np.ndarray:
            clock.now += ms * load["factor"] / 1e3
            calls[name] += 1
            if name == "pruned" and calls[name] % 2 == 0:  # the round ends after pruned's second call
                load["factor"] *= 2
            return x

        return CallableRunner(step)

    return {"dense": runner("dense", 2.0), "pruned": runner("pruned", 1.0)}


def test_ratio_interval_comes_from_paired_rounds() -> None:
    """Drift moves both models alike, so the paired per-round ratios stay at 0.5 while each latency
    spreads 4x. Catches ratios of unpaired rounds (e.g. pruned's round i over dense's round n-1-i)."""
    clock = FakeClock()
    x = np.zeros((1,), dtype=np.float32)
    cfg = TimingConfig(warmup_ms=0.0, min_duration_s=0.0, min_iters=6)
    result = interleaved(drifting_runners(clock), {"dense": x, "pruned": x}, cfg, repeats=3, clock=clock)
    key = {"backend": "torch", "device": "cpu", "precision": "fp32", "variant": "eager", "batch": 1, "threads": 1}
    comparison = result.comparison_row(key, 0.5)
    rows = {r["model"]: r for r in result.measurement_rows(key, {})}
    iv = ratio_interval(comparison)
    assert (iv.median, iv.low, iv.high) == pytest.approx((0.5, 0.5, 0.5))
    assert (comparison["ratio"]["p10"], comparison["ratio"]["p90"]) == pytest.approx((0.5, 0.5))
    assert comparison["unstable"] is False
    assert rows["dense"]["round_medians_ms"] == pytest.approx([2.0, 4.0, 8.0])
    assert rows["dense"]["unstable"] is True and not latency_interval(rows["dense"]).stable
