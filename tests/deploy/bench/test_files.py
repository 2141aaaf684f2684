from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from cplitool.deploy.bench.files import bench_files
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.finite import NonFiniteError
from tests.deploy.bench.fakes import write_engine
from tests.deploy.pruned_run import make_run

FAST = {"batches": [2], "threads": 1, "repeats": 2, "min_duration_s": 0.02}


def onnx_pair(folder: Path) -> tuple[str, str]:
    _, run = make_run(folder, onnx=True)
    return str(run.file("dense.fp32.onnx")), str(run.file("pruned.fp32.onnx"))


def test_two_onnx_files_are_compared_as_dense_and_pruned(in_tmp: Path) -> None:
    dense, pruned = onnx_pair(in_tmp)
    doc = bench_files([dense, pruned], output=in_tmp / "files.json", **FAST)  # type: ignore[arg-type]
    assert [(m["model"], m["source"]) for m in doc["measurements"]] == [("dense", dense), ("pruned", pruned)]
    (c,) = doc["comparisons"]
    assert c["batch"] == 2 and len(c["ratio"]["rounds"]) == 2 and c["ratio"]["median"] > 0
    assert c["ratio"]["p10"] <= c["ratio"]["median"] <= c["ratio"]["p90"]
    assert doc["input_shape"] == [1, 8, 8]
    assert json.loads((in_tmp / "files.json").read_text())["comparisons"] == doc["comparisons"]


def test_one_file_is_timed_alone(in_tmp: Path) -> None:
    dense, _ = onnx_pair(in_tmp)
    doc = bench_files([dense], **FAST)  # type: ignore[arg-type]
    assert [m["model"] for m in doc["measurements"]] == ["model"] and doc["comparisons"] == []


def test_a_file_with_nan_weights_is_refused_naming_the_tensor(in_tmp: Path) -> None:
    import onnx
    from onnx import numpy_helper

    dense, _ = onnx_pair(in_tmp)
    model = onnx.load(dense)
    first = model.graph.initializer[0]
    first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * float("nan"), first.name))
    onnx.save(model, dense)
    with pytest.raises(NonFiniteError, match=rf"dense.fp32.onnx: weights are not finite: '{first.name}' holds"):
        bench_files([dense], **FAST)  # type: ignore[arg-type]


def test_fixed_batch_and_dynamic_sizes_are_explained(in_tmp: Path) -> None:
    path = in_tmp / "fixed.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(UsageError, match="cannot run batch \\[2\\]; it takes batch 1"):
        bench_files([str(path)], **FAST)  # type: ignore[arg-type]
    dynamic = in_tmp / "dynamic.onnx"
    torch.onnx.export(
        torch.nn.Conv2d(3, 4, 3),
        (torch.zeros(1, 3, 8, 8),),
        str(dynamic),
        input_names=["x"],
        dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
        dynamo=False,
    )
    with pytest.raises(UsageError, match="pass --input-shape"):
        bench_files([str(dynamic)], **FAST)  # type: ignore[arg-type]
    doc = bench_files([str(dynamic)], input_shape=(3, 16, 16), **FAST)  # type: ignore[arg-type]
    assert doc["input_shape"] == [3, 16, 16]


def test_bench_cli_on_files_prints_the_ratio(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    dense, pruned = onnx_pair(in_tmp)
    result = cli("bench", dense, pruned, "--batch", "2", "--repeats", "2", "--duration", "0.02", "--threads", "1")
    assert result.code == 0, result.err
    assert "pruned /" in result.out and "dense: " in result.out
    bad = cli("bench", dense, "recipes/x.toml")
    assert bad.code == 2 and "model files take no recipe" in bad.out + bad.err


def test_engines_need_tensorrt(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on this machine
    engine = write_engine(in_tmp / "m.plan")
    with pytest.raises(UsageError, match="cannot run batch \\[16\\]"):
        bench_files([str(engine)], batches=[16])
    with pytest.raises(UsageError, match="cannot run TensorRT engines here: tensorrt is not installed"):
        bench_files([str(engine)], **FAST)  # type: ignore[arg-type]


def test_two_engines_are_compared_on_device_times(in_tmp: Path, gpu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file path through TensorRT on the fakes of tests.deploy.gpu_fakes: device-timed rows and a ratio."""
    from tests.deploy.gpu_fakes import fake_tensorrt, install_pycuda

    install_pycuda(monkeypatch, None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(gpu, version="10.9.0"))
    engines = [str(write_engine(in_tmp / f"{m}.plan")) for m in ("dense", "pruned")]
    doc = bench_files(engines, **FAST)  # type: ignore[arg-type]
    assert doc["failed"] == [] and [(c["backend"], c["precision"]) for c in doc["comparisons"]] == [
        ("tensorrt", "fp16")
    ]
    assert all(m["primary_metric"] == "compute" for m in doc["measurements"])
    assert gpu.clean(), gpu.problems
