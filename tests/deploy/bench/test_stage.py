from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from cplitool.deploy.bench.stage import SCHEMA, bench_stage
from cplitool.toolchain.install import install_hint
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
    assert install_hint("trt") in reasons[("tensorrt", "cuda")]
    assert "torch sees no CUDA device" in reasons[("torch", "cuda")]
    assert "cplitool export" in reasons[("onnxruntime", "cpu")]  # no ONNX files exported yet
    assert [c["backend"] for c in doc["comparisons"]] == ["torch"]


def test_bad_backend_is_a_usage_error(in_tmp: Path) -> None:
    from cplitool.toolchain.errors import UsageError

    recipe, run = make_run(in_tmp)
    with pytest.raises(UsageError, match="backends must be among"):
        bench_stage(recipe, run, backends=["tvm"])


def test_nan_weights_are_refused_before_timing(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from cplitool.toolchain.artifacts import load_artifact, save_artifact

    _, run = make_run(in_tmp, onnx=True)
    model, info = load_artifact(run.file("pruned.pt"))
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    run.record("prune", save_artifact(run.file("pruned.pt"), model, info), "test", {})
    result = cli("bench", "runs/benchtest", "--backend", "torch")
    assert result.code == 1 and "pruned (quick_vgg, pruned.pt): weights are not finite" in result.err
    assert "Traceback" not in result.err and not run.file("bench.json").exists()


def test_bench_cli_prints_a_table(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    make_run(in_tmp, onnx=True)
    result = cli("bench", "runs/benchtest", "--backend", "onnxruntime", "--batch", "3")
    assert result.code == 0, result.err
    assert "onnxruntime" in result.out and "dense vs pruned" in result.out
    assert json.loads((in_tmp / "runs/benchtest/bench.json").read_text())["settings"]["batches"] == [3]


def test_a_target_that_fails_is_recorded_and_the_others_still_run(in_tmp: Path, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Catches an error that is not cplitool's own (a CUDA error, say) ending the command with no bench.json."""
    from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner

    def broken(self: OnnxRuntimeRunner) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore detail")

    monkeypatch.setattr(OnnxRuntimeRunner, "activate", broken)
    make_run(in_tmp, onnx=True)
    result = cli("bench", "runs/benchtest", "--backend", "torch", "--backend", "onnxruntime")
    assert result.code == 1 and "1 bench target(s) failed" in " ".join(result.out.split() + result.err.split())
    doc = json.loads((in_tmp / "runs/benchtest/bench.json").read_text())
    (failure,) = doc["failed"]
    assert failure["backend"] == "onnxruntime" and failure["status"] == "failed" and failure["batch"] == 2
    assert failure["reason"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert [c["backend"] for c in doc["comparisons"]] == ["torch"]  # the torch target still ran
    assert "dense vs pruned" in result.out  # and its table was printed


def test_tensorrt_engines_run_through_cuda_python_and_bench_json_says_so(
    in_tmp: Path, gpu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole TensorRT bench path on fakes (no pycuda, cuda-python present): engines from the export
    manifest, device-timed rows, the I/O library recorded, everything freed."""
    import torch

    from tests.deploy.bench.fakes import write_engine
    from tests.deploy.gpu_fakes import fake_tensorrt, install_pycuda

    install_pycuda(monkeypatch, None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(gpu, version="10.9.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe, run = make_run(in_tmp)
    files = []
    for model in ("dense", "pruned"):
        engine = write_engine(run.file(f"trt/{model}.fp16.engine"))
        files.append(
            {
                "model": model,
                "precision": "fp16",
                "path": f"onnx/{model}.fp16.onnx",
                "status": "done",
                "engine": str(engine.relative_to(run.path)),
            }
        )
    run.record("export", None, "test", {}, files=files)
    doc = bench_stage(recipe, run, backends=["tensorrt"], batches=[2])
    assert doc["failed"] == [] and [c["backend"] for c in doc["comparisons"]] == ["tensorrt"]
    rows = [m for m in doc["measurements"] if m["backend"] == "tensorrt"]
    assert {m["runtime"]["io"] for m in rows} == {"cuda-python"}
    assert all(m["primary_metric"] == "compute" and m["compute_ms"]["median"] == 0.25 for m in rows)
    assert gpu.clean(), gpu.problems


def test_fp32_on_an_ampere_or_newer_gpu_is_labelled_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from cplitool.deploy.runners.torch_runner import precision_label

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert precision_label("cuda", "fp32") == "tf32"
    assert precision_label("cuda", "fp16") == "fp16" and precision_label("cpu", "fp32") == "fp32"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda, "matmul", SimpleNamespace(allow_tf32=False))
    assert precision_label("cuda", "fp32") == "fp32"  # TF32 switched off: really fp32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert precision_label("cuda", "fp32") == "fp32"  # Turing has no TF32


def test_a_host_without_a_gpu_gets_one_line_of_gpu_advice() -> None:
    from cplitool.deploy.bench.stage import Skip, skip_lines

    skips = [
        Skip("onnxruntime", "cuda", "CUDAExecutionProvider is not available; pip install onnxruntime-gpu"),
        Skip("torch", "cuda", "torch sees no CUDA device"),
        Skip("tensorrt", "cuda", "tensorrt is not installed"),
        Skip("onnxruntime", "cpu", "no ONNX files: run `cplitool export`"),
    ]
    lines = skip_lines(skips, gpu_host=False, detailed=False)
    assert lines == [
        "bench: skipped onnxruntime (cpu): no ONNX files: run `cplitool export`",
        "bench: GPU backends skipped (onnxruntime, torch, tensorrt): no CUDA device; see `cplitool doctor`",
    ]
    assert len(skip_lines(skips, gpu_host=True, detailed=False)) == 4  # on a GPU host each reason helps
    assert len(skip_lines(skips, gpu_host=False, detailed=True)) == 4  # --verbose
