from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from deploy.bench.stage import SCHEMA, bench_stage
from tests.deploy.pruned_run import make_run


def test_bench_writes_schema_versioned_results_and_records_the_stage(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp, onnx=True)
    doc = bench_stage(recipe, run, backends=["torch", "onnxruntime"], trace=True)
    saved = json.loads(run.file("bench.json").read_text())
    assert saved["schema"] == SCHEMA == doc["schema"]
    keys = {(c["backend"], c["device"], c["precision"], c["batch"]) for c in saved["comparisons"]}
    assert keys == {("torch", "cpu", "fp32", 2), ("onnxruntime", "cpu", "fp32", 2)}
    for c in saved["comparisons"]:
        assert c["ratio"]["median"] > 0 and len(c["ratio"]["rounds"]) == 2
        assert c["macs_ratio"] == pytest.approx(saved["models"]["pruned"]["macs"] / saved["models"]["dense"]["macs"])
    m = saved["measurements"][0]
    assert {"latency_ms", "throughput_ips", "iterations", "warmup_iterations", "warnings"} <= set(m)
    assert m["latency_ms"]["count"] == m["iterations"] >= 3
    assert saved["environment"]["threads"] == 1 and saved["environment"]["cpu"]
    assert run.stage("bench")["status"] == "done"
    traces = json.loads(run.file("bench_trace.json").read_text())["traces"]
    assert len(traces) == 4 and len(traces[0]["trace"]) == saved["measurements"][0]["iterations"]


def test_skip_reasons_name_what_is_missing(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError, as on this machine
    recipe, run = make_run(in_tmp, onnx=False)
    doc = bench_stage(recipe, run, batches=[1])
    reasons = {(s["backend"], s["device"]): s["reason"] for s in doc["skipped"]}
    assert "tensorrt is not installed" in reasons[("tensorrt", "cuda")]
    assert "cplitool[trt]" in reasons[("tensorrt", "cuda")]
    assert "torch sees no CUDA device" in reasons[("torch", "cuda")]
    assert "cplitool export" in reasons[("onnxruntime", "cpu")]  # no ONNX files exported yet
    assert [c["backend"] for c in doc["comparisons"]] == ["torch"]


def test_bad_backend_is_a_usage_error(in_tmp: Path) -> None:
    from toolchain.errors import UsageError

    recipe, run = make_run(in_tmp)
    with pytest.raises(UsageError, match="backends must be among"):
        bench_stage(recipe, run, backends=["tvm"])


def test_bench_cli_prints_a_table(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    make_run(in_tmp, onnx=True)
    result = cli("bench", "runs/benchtest", "--backend", "onnxruntime", "--batch", "3")
    assert result.code == 0, result.err
    assert "onnxruntime" in result.out and "dense vs pruned" in result.out
    assert json.loads((in_tmp / "runs/benchtest/bench.json").read_text())["settings"]["batches"] == [3]
