"""Several ONNX files timed interleaved on ONNX Runtime CPU (cplitool.deploy.bench.compare.interleaved): each file's
per-round medians, for benchmarks that compare precisions or variants of one model in one run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cplitool.deploy.bench.compare import interleaved  # noqa: E402
from cplitool.deploy.bench.timing import TimingConfig  # noqa: E402
from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner  # noqa: E402


def round_medians(
    paths: dict[str, Path], batch: int, threads: int, rounds: int, shape: tuple[int, ...], seconds_per_round: float
) -> dict[str, list[float]]:
    """name -> its median latency (ms) in each of `rounds` interleaved rounds, on one seeded random batch."""
    runners = {n: OnnxRuntimeRunner(p, threads=threads) for n, p in paths.items()}
    x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    for r in runners.values():
        r.__enter__()
    try:
        cfg = TimingConfig(warmup_ms=100.0, min_duration_s=seconds_per_round * rounds, min_iters=5 * rounds)
        result = interleaved(dict(runners), dict.fromkeys(runners, x), cfg, rounds, ratio=None)  # type: ignore[arg-type]
    finally:
        for r in runners.values():
            r.__exit__(None, None, None)
    return result.round_medians
