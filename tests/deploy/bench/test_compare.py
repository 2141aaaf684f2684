from __future__ import annotations

import numpy as np
import pytest

from cplitool.deploy.bench.compare import interleaved
from cplitool.deploy.bench.timing import TimingConfig
from tests.deploy.bench.fakes import FakeClock, fake_runner


def test_dense_and_pruned_alternate_and_the_ratio_is_per_round() -> None:
    clock, log = FakeClock(), []
    runners = {"dense": fake_runner(clock, 2.0, "dense", log), "pruned": fake_runner(clock, 1.0, "pruned", log)}
    x = np.zeros((2, 3), dtype=np.float32)
    cfg = TimingConfig(warmup_ms=0.0, min_duration_s=0.0, min_iters=6)  # 2 per round
    result = interleaved(runners, {"dense": x, "pruned": x}, cfg, repeats=3, clock=clock)
    assert log == ["dense", "dense", "pruned", "pruned"] * 3  # A B A B A B, two timed iterations each
    assert result.ratio is not None
    assert result.ratio.rounds == pytest.approx([0.5, 0.5, 0.5])
    assert result.ratio.to_dict()["median"] == pytest.approx(0.5)
    assert result.measurements["dense"].samples.iterations == 6  # pooled over rounds
    assert result.round_medians["pruned"] == pytest.approx([1.0, 1.0, 1.0])


def test_duration_and_iteration_minimum_are_split_over_rounds() -> None:
    clock = FakeClock()
    runners = {"dense": fake_runner(clock, 1.0), "pruned": fake_runner(clock, 1.0)}
    x = np.zeros((1,), dtype=np.float32)
    result = interleaved(runners, {"dense": x, "pruned": x}, TimingConfig(0.0, 0.04, 1), repeats=4, clock=clock)
    assert result.measurements["dense"].samples.wall_s == pytest.approx(0.04)
    assert result.measurements["dense"].samples.iterations == 40
    result = interleaved(runners, {"dense": x, "pruned": x}, TimingConfig(0.0, 0.0, 10), repeats=4, clock=clock)
    assert result.measurements["pruned"].samples.iterations == 12  # ceil(10 / 4) per round: at least 10 in all
