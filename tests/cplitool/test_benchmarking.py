"""cplitool.bench: modules and ONNX files timed interleaved, with the spread of the per-round medians."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cplitool
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model

QUICK = {"duration_s": 0.05, "min_iters": 3, "warmup_ms": 5.0, "repeats": 3}


def test_two_onnx_files_give_a_ratio_and_the_shape_comes_from_the_file(tmp_path: Path) -> None:
    model = create_model("quick_vgg", 10).eval()
    pruned, _ = cplitool.prune(model, method="l1", macs_keep=0.5, input_shape=(1, 8, 8))
    for name, m in (("d", model), ("p", pruned)):
        cplitool.export(m, tmp_path / f"{name}.onnx", input_shape=(1, 8, 8), dynamic_batch=False)
    result = cplitool.bench(tmp_path / "d.onnx", tmp_path / "p.onnx", batch=1, threads=1, **QUICK)
    ratio = result.ratio
    assert ratio is not None and len(ratio["rounds"]) == 3
    assert ratio["min"] <= ratio["median"] <= ratio["max"]
    rows = result.rows()
    assert [r["model"] for r in rows] == ["dense", "pruned"] and rows[0]["batch"] == 1
    assert "pruned/dense" in result.table() and result.stats("dense").count >= 3


def test_one_module(tmp_path: Path) -> None:
    result = cplitool.bench(create_model("quick_vgg", 10), example_input=torch.randn(1, 1, 8, 8), batch=4, **QUICK)
    assert result.ratio is None and result.stats("dense").median > 0
    assert "(" in result.table() and " ms " in result.table()  # every latency shown with its spread


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="file not found"):
        cplitool.bench(tmp_path / "none.onnx", input_shape=(1, 8, 8))
    with pytest.raises(UsageError, match="batch and repeats must be >= 1"):
        cplitool.bench(create_model("quick_vgg", 10), input_shape=(1, 8, 8), batch=0)


def test_table_marks_a_wide_spread_unstable() -> None:
    """Breaks caught: showing a latency without its spread, or never flagging one that swings 2x."""
    from cplitool.benchmarking import BenchResult
    from cplitool.deploy.bench.compare import Comparison, Ratio
    from cplitool.deploy.bench.timing import Samples, measurement

    def meas(values: list[float]) -> object:
        s = Samples()
        s.values["latency"] = values
        s.wall_s = sum(values) / 1e3
        return measurement(1, s)

    steady, swinging = [1.0] * 5, [1.0, 1.0, 2.0, 1.0, 1.0]
    result = BenchResult(
        1,
        Comparison(
            {"dense": meas(steady), "pruned": meas(swinging)},  # type: ignore[dict-item]
            {"dense": steady, "pruned": swinging},
            Ratio("latency", [a / b for a, b in zip(swinging, steady, strict=True)]),
        ),
    )
    lines = result.table().splitlines()
    assert "1.000 (1.000-1.000) ms" in lines[1] and "unstable" not in lines[1]
    assert "(1.000-2.000)" in lines[2] and lines[2].endswith("unstable")
    assert lines[3].startswith("  pruned/dense 1.000 (1.000-2.000)") and lines[3].endswith("unstable")
