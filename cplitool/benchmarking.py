"""`cplitool.bench`: time one model, or a dense and a pruned model interleaved, as `cplitool bench` does.

Models are nn.Modules (PyTorch runner), ONNX files (ONNX Runtime) or TensorRT engines (.engine/.plan/.trt);
the timing loop, the interleaving and the statistics are deploy/bench's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cplitool.deploy.bench.compare import Comparison, interleaved
from cplitool.deploy.bench.spread import interval
from cplitool.deploy.bench.stats import Stats
from cplitool.deploy.bench.timing import TimingConfig
from cplitool.deploy.runners.select import is_onnx, runner_for
from cplitool.inputs import sample_shape
from cplitool.toolchain.errors import UsageError

WHERE = "cplitool.bench"


def onnx_sample_shape(model: Any) -> tuple[int, ...] | None:
    """One sample's shape from an ONNX file's input when every axis but the batch is fixed, else None."""
    if not (isinstance(model, str | Path) and is_onnx(model)):
        return None
    from cplitool.deploy.export.checks import load_onnx

    dims = load_onnx(model).graph.input[0].type.tensor_type.shape.dim[1:]
    return tuple(d.dim_value for d in dims) if dims and all(d.dim_value > 0 for d in dims) else None


@dataclass
class BenchResult:
    """Per-model statistics (ms) and, for two models, the pruned/dense ratio of the per-round medians."""

    batch: int
    comparison: Comparison

    def stats(self, name: str) -> Stats:
        """The headline metric's statistics: GPU compute time where measured, else host latency."""
        return self.comparison.measurements[name].primary

    @property
    def ratio(self) -> dict[str, Any] | None:
        """median, min, max, cv and every round's value of pruned/dense; None for a single model."""
        return self.comparison.ratio.to_dict() if self.comparison.ratio is not None else None

    def rows(self) -> list[dict[str, Any]]:
        """One row per model in bench.json's form."""
        return self.comparison.measurement_rows({"batch": self.batch}, {})

    def table(self) -> str:
        """Plain text: each median with the p10-p90 of its per-round medians, the paired pruned/dense ratio
        with its own p10-p90, and "unstable" where a spread is wider than cplitool.deploy.bench.spread.SPREAD_LIMIT."""
        lines = [f"batch {self.batch}: median ms (p10-p90 over rounds), images/s"]
        for name, meas in self.comparison.measurements.items():
            spread = interval(self.comparison.round_medians[name], meas.primary.median)
            flag = "" if spread.stable else "  unstable"
            lines.append(f"  {name:<7} {spread.text()} ms {meas.throughput:10.1f}/s{flag}")
        if self.comparison.ratio is not None:
            ratio = interval(self.comparison.ratio.rounds)
            flag = "" if ratio.stable else "  unstable"
            lines.append(f"  pruned/dense {ratio.text()} over {ratio.rounds} rounds{flag}")
        return "\n".join(lines)


def bench(
    dense: nn.Module | str | Path,
    pruned: nn.Module | str | Path | None = None,
    *,
    example_input: torch.Tensor | None = None,
    input_shape: Sequence[int] | None = None,
    batch: int = 1,
    device: str = "cpu",
    threads: int = 0,
    repeats: int = 5,
    duration_s: float = 2.0,
    min_iters: int = 10,
    warmup_ms: float = 200.0,
) -> BenchResult:
    """Time `dense` (and `pruned`, interleaved A B A B ... for `repeats` rounds) at `batch` on random inputs.

    Each model is an nn.Module, an .onnx file, a TensorRT engine or a cplitool artifact. `duration_s` and
    `min_iters` are split over the rounds; `threads` fixes the CPU thread count (0: all cores).
    """
    if batch < 1 or repeats < 1:
        raise UsageError(f"{WHERE}: batch and repeats must be >= 1, got batch={batch}, repeats={repeats}")
    shape = onnx_sample_shape(dense) if example_input is None and input_shape is None else None
    shape = shape or sample_shape(example_input, input_shape, WHERE)
    x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    models = {"dense": dense} if pruned is None else {"dense": dense, "pruned": pruned}
    cfg = TimingConfig(warmup_ms=warmup_ms, min_duration_s=duration_s, min_iters=min_iters)
    with contextlib.ExitStack() as stack:
        runners = {
            name: stack.enter_context(runner_for(m, device=device, threads=threads, where=WHERE))
            for name, m in models.items()
        }
        inputs = {name: x.astype(r.input_dtype, copy=False) for name, r in runners.items()}
        comparison = interleaved(
            runners, inputs, cfg, repeats, ratio=("pruned", "dense") if pruned is not None else None
        )
    return BenchResult(batch, comparison)
