from __future__ import annotations

import numpy as np
import pytest

from cplitool.deploy.bench.stats import summarize
from cplitool.deploy.bench.timing import TimingConfig, measurement, run_samples, trace_rows, warnings_for
from cplitool.deploy.runners.device_times import DeviceTimes
from tests.deploy.bench.fakes import FakeClock, fake_gpu_runner, fake_runner

X = np.zeros((4, 1, 8, 8), dtype=np.float32)


def test_warmup_is_time_based_and_both_minimums_hold() -> None:
    clock = FakeClock()
    runner = fake_runner(clock, ms=2.0)
    s = run_samples(runner, X, TimingConfig(warmup_ms=10.0, min_duration_s=0.1, min_iters=10), clock)
    assert s.warmup_iters == 5  # 10 ms of 2 ms iterations
    assert s.iterations == 50  # 0.1 s dominates 10 iterations
    assert s.wall_s >= 0.1
    assert s.values["latency"] == pytest.approx([2.0] * 50)
    assert s.values["compute"] == []  # a CPU runner reports no device times
    s = run_samples(runner, X, TimingConfig(warmup_ms=0.0, min_duration_s=0.001, min_iters=10), clock)
    assert (s.warmup_iters, s.iterations) == (0, 10)  # the count dominates a short duration


def test_device_times_are_collected_and_gpu_compute_is_primary() -> None:
    clock = FakeClock()
    runner = fake_gpu_runner(clock, DeviceTimes(enqueue_ms=0.1, h2d_ms=0.2, compute_ms=1.0, d2h_ms=0.05))
    m = measurement(8, run_samples(runner, X, TimingConfig(0.0, 0.0125, 5), clock))
    assert m.primary_metric == "compute"
    assert m.stats["h2d"].median == 0.2 and m.stats["enqueue"].median == 0.1
    assert m.throughput == 8 * m.samples.iterations / m.samples.wall_s
    assert m.warnings == []
    d = m.to_dict(trace=True)
    assert d["total_gpu_compute_s"] == m.samples.iterations * 1.0 / 1e3
    assert len(d["trace"]) == m.samples.iterations
    assert set(trace_rows(m.samples)[0]) == {"start_ms", "latency_ms", "enqueue_ms", "h2d_ms", "compute_ms", "d2h_ms"}


def test_warnings_enqueue_bound_transfer_bound_unstable() -> None:
    def stats(enqueue: float, h2d: float, compute: list[float], d2h: float) -> dict:
        return {
            "latency": summarize([1.0]),
            "enqueue": summarize([enqueue]),
            "h2d": summarize([h2d]),
            "compute": summarize(compute),
            "d2h": summarize([d2h]),
        }

    assert warnings_for(stats(0.1, 0.1, [1.0, 1.0], 0.1)) == []
    w = warnings_for(stats(0.9, 0.1, [1.0, 1.0], 0.1))
    assert len(w) == 1 and w[0].startswith("enqueue-bound")
    w = warnings_for(stats(0.1, 1.5, [1.0, 1.0], 1.0))
    assert [x.split(":")[0] for x in w] == ["transfer-bound", "transfer-bound"]
    w = warnings_for(stats(0.1, 0.1, [1.0, 1.1], 0.1))
    assert len(w) == 1 and w[0].startswith("unstable: GPU compute")
    cpu = warnings_for({"latency": summarize([1.0, 1.5])})
    assert len(cpu) == 1 and cpu[0].startswith("unstable: host latency")
