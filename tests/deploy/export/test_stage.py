"""The export stage on a briefly trained digits model: FP32/FP16 parity, INT8 accuracy, manifest, failure path."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from cplitool.deploy.export.metadata import read_metadata
from cplitool.deploy.export.quantize import int32_dequantize_inputs
from cplitool.deploy.export.stage import export_stage
from cplitool.toolchain.artifacts import load_artifact, save_artifact
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError, UsageError
from cplitool.toolchain.finite import NonFiniteError
from cplitool.toolchain.install import install_hint
from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.rundir import RunDir
from tests.conftest import REPO
from tests.deploy.pruned_run import make_run

# quickstart's settings, fewer epochs: quick_vgg reaches ~98-99% on digits in a few seconds.
OVERRIDES: dict[str, Any] = {
    "run": {"threads": 1},  # the test machine's cores are shared; one thread avoids oversubscription stalls
    "train": {"epochs": 6},
    "data": {"workers": 0},
    "export": {"parity_images": 128, "calib_images": 256},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A run directory holding a dense quick_vgg trained on digits (made once per module)."""
    from cplitool.toolchain.train.stage import train_dense

    folder = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        recipe = load_recipe(
            REPO / "recipes" / "quickstart.toml", {**OVERRIDES, "run": {"threads": 1, "dir": str(folder / "run")}}
        )
        train_dense(recipe)
    yield folder / "run"


def fresh_run(trained: Path, folder: Path, **export: Any) -> tuple[Recipe, RunDir]:
    """A copy of the trained run (tests must not share export results) and its recipe with overrides."""
    target = folder / "run"
    shutil.copytree(trained, target)
    overrides = {**OVERRIDES, "run": {"threads": 1, "dir": str(target)}, "export": {**OVERRIDES["export"], **export}}
    return load_recipe(REPO / "recipes" / "quickstart.toml", overrides), RunDir(target)


def by_precision(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["precision"]: f for f in entry["files"] if f["model"] == "dense"}


def test_fp32_fp16_int8_on_digits(trained: Path, in_tmp: Path) -> None:
    recipe, run = fresh_run(trained, in_tmp)
    entry = export_stage(recipe, run, precisions=["fp32", "fp16", "int8"])
    assert entry["status"] == "done" and run.stage("export")["status"] == "done"
    files = by_precision(entry)
    assert sorted(files) == ["fp16", "fp32", "int8"]
    fp32, fp16, int8 = files["fp32"], files["fp16"], files["int8"]
    assert all(f["status"] == "done" and (run.path / f["path"]).is_file() for f in files.values())
    # FP32 and FP16 against PyTorch, on 128 real validation images, at the recipe's default tolerances
    assert fp32["parity"]["passed"] and fp32["parity"]["atol"] == 1e-4 and fp32["parity"]["images"] == 128
    assert fp16["parity"]["passed"] and fp16["parity"]["atol"] == 1e-2
    assert fp16["parity"]["abs_err"]["max"] > fp32["parity"]["abs_err"]["max"]  # it really is a lower precision
    # INT8 accuracy measured with ONNX Runtime over the whole validation split, within a point of FP32
    assert fp32["accuracy"]["images"] == int8["accuracy"]["images"] == 360
    assert fp32["accuracy"]["top1"] > 95.0
    assert abs(fp32["accuracy"]["top1"] - int8["accuracy"]["top1"]) <= 1.0
    assert int8["export"]["calibration_images"] == 256
    # the subsets that judged the files: their size, of how many, and the seed, in the manifest
    samples = entry["samples"]
    assert samples["accuracy"]["images"] == samples["accuracy"]["of"] == 360 and samples["accuracy"]["seed"] == 0
    assert (samples["parity"]["images"], samples["calibration"]["images"], samples["calibration"]["of"]) == (
        128,
        256,
        1437,
    )
    assert int8["accuracy"]["drop_vs_fp32"]["verdict"] == "pass" and int8["accuracy"]["drop_vs_fp32"]["images"] == 360
    # graph forms: FP16 keeps FP32 I/O; INT8 is symmetric per-channel Q/DQ
    g16 = onnx.load(str(run.path / fp16["path"])).graph
    assert g16.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in g16.initializer)
    g8 = onnx.load(str(run.path / int8["path"])).graph
    ops = {n.op_type for n in g8.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {t.name: numpy_helper.to_array(t) for t in g8.initializer}
    zero_points = [inits[n.input[2]] for n in g8.node if n.op_type == "DequantizeLinear" and len(n.input) > 2]
    assert zero_points and all(np.all(z == 0) for z in zero_points)  # symmetric; biases stay float (no INT32 DQ)
    assert any(z.dtype == np.int8 for z in zero_points)
    assert int32_dequantize_inputs(onnx.load(str(run.path / int8["path"]))) == []
    scales = [inits[n.input[1]] for n in g8.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert any(s.size > 1 for s in scales)  # per-channel weight scales
    meta = read_metadata(run.path / int8["path"])
    assert meta["cplitool.precision"] == "int8" and float(meta["cplitool.top1"]) == pytest.approx(
        int8["accuracy"]["top1"], abs=1e-3
    )
    assert int(meta["cplitool.macs"]) > 0 and len(meta["cplitool.source_sha256"]) == 64
    # a second call with nothing changed is a no-op
    stamp = (run.path / fp32["path"]).stat().st_mtime_ns
    assert export_stage(recipe, run, precisions=["fp32", "fp16", "int8"])["updated"] == entry["updated"]
    assert (run.path / fp32["path"]).stat().st_mtime_ns == stamp


def test_failed_parity_keeps_the_file_and_marks_it_failed(trained: Path, in_tmp: Path) -> None:
    recipe, run = fresh_run(trained, in_tmp, atol_fp32=0.0, rtol_fp32=0.0)
    with pytest.raises(CplitoolError, match=r"export check failed.*dense\.fp32\.onnx: parity FAIL"):
        export_stage(recipe, run, models=["dense"], precisions=["fp32"])
    entry = run.stage("export")
    assert entry["status"] == "failed" and run.artifact("export") is None
    (file,) = entry["files"]
    assert file["status"] == "failed" and not file["parity"]["passed"]
    assert file["parity"]["min_atol"] > 0  # the report says what tolerance would have passed
    assert (run.path / file["path"]).is_file()  # kept for inspection
    assert read_metadata(run.path / file["path"])["cplitool.status"] == "failed"


def test_nan_weights_are_refused_naming_the_tensor(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp)
    model, info = load_artifact(run.file("dense.pt"))
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    run.record("train", save_artifact(run.file("dense.pt"), model, info), "test", {})
    with pytest.raises(
        NonFiniteError, match=r"dense \(quick_vgg, dense.pt\): weights are not finite: '[\w.]+weight' holds \d+ NaN"
    ):
        export_stage(recipe, run, models=["dense"], precisions=["fp32"])
    assert run.stage("export") is None  # refused before anything was recorded


def test_eval_subset_is_seeded_and_shared_by_every_file(trained: Path, in_tmp: Path) -> None:
    recipe, run = fresh_run(trained, in_tmp, eval_images=100)
    entry = export_stage(recipe, run, models=["dense"], precisions=["fp32", "int8"])
    assert entry["samples"]["accuracy"] == {
        "split": "validation",
        "images": 100,
        "of": 360,
        "seed": 0,
        "sampling": "seeded uniform random sample without replacement (run.seed)",
    }
    files = by_precision(entry)
    assert files["fp32"]["accuracy"]["images"] == files["int8"]["accuracy"]["images"] == 100
    assert files["int8"]["accuracy"]["drop_vs_fp32"]["images"] == 100  # paired on the same 100 images


def test_dense_and_pruned_are_both_exported(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp)  # random-weight dense and pruned quick_vgg artifacts
    entry = export_stage(recipe, run, precisions=["fp32"])
    models = {f["model"]: f for f in entry["files"]}
    assert sorted(models) == ["dense", "pruned"]
    assert all(f["parity"]["passed"] for f in models.values())
    dense_macs = int(read_metadata(run.path / models["dense"]["path"])["cplitool.macs"])
    pruned_macs = int(read_metadata(run.path / models["pruned"]["path"])["cplitool.macs"])
    assert pruned_macs < dense_macs


def test_bad_precision_and_model_are_usage_errors(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp)
    with pytest.raises(UsageError, match=r"precision: unknown value.*'bf16'"):
        export_stage(recipe, run, precisions=["bf16"])
    with pytest.raises(UsageError, match=r"model: unknown value.*'tiny'"):
        export_stage(recipe, run, models=["tiny"])


def test_trt_without_tensorrt_stops_at_once(in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from cplitool.cli.app import main

    _recipe, run = make_run(in_tmp)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt fails, even on a host that has it
    monkeypatch.setattr(sys, "argv", ["cplitool", "export", "--trt", str(run.path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "tensorrt" in err and install_hint("trt") in err  # the pip line that fits this install
    assert not (run.path / "onnx").exists()  # nothing was exported before the error
    with pytest.raises(MissingDependencyError, match=re.escape(install_hint("trt"))):
        export_stage(_recipe, run, trt=True)
    assert run.stage("export") is None  # nothing recorded either


def test_an_engine_that_fails_to_build_is_recorded_and_the_others_are_built(
    in_tmp: Path, gpu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the fake TensorRT: the FP16 builds raise a GPU error; the FP32 engines are still built, every
    failure is in the manifest with its reason, and the command fails saying so."""
    import cplitool.deploy.trt.build as build
    from cplitool.deploy.bench.stage import exported_files
    from tests.deploy.gpu_fakes import fake_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(gpu))
    real = build.build_engine

    def flaky(onnx_path: Path, *args: Any) -> Any:
        if ".fp16." in str(onnx_path):
            raise RuntimeError("Cuda Runtime Error: out of memory\nsecond line")
        return real(onnx_path, *args)

    monkeypatch.setattr(build, "build_engine", flaky)
    recipe, run = make_run(in_tmp)
    with pytest.raises(CplitoolError, match=r"engine build failed for 2 of 4 files.*fp16\.onnx: RuntimeError: Cuda"):
        export_stage(recipe, run, precisions=["fp32", "fp16"], trt=True)
    entry = run.stage("export")
    assert entry["status"] == "done"  # the ONNX files themselves passed their checks
    status = {(f["model"], f["precision"]): (f["engine_status"], f["engine_reason"]) for f in entry["files"]}
    assert status[("dense", "fp32")] == ("built", None) and status[("pruned", "fp32")] == ("built", None)
    assert status[("dense", "fp16")] == ("failed", "RuntimeError: Cuda Runtime Error: out of memory")
    engines = [f["path"] for f in exported_files(run) if f["path"].endswith(".engine")]
    assert sorted(Path(p).name for p in engines) == ["dense.fp32.engine", "pruned.fp32.engine"]


def test_each_file_is_one_short_line_and_verbose_adds_the_statistics(
    trained: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cplitool.toolchain.verbosity import ENV

    recipe, run = fresh_run(trained, in_tmp)
    monkeypatch.delenv(ENV, raising=False)
    export_stage(recipe, run, models=["dense"], precisions=["fp32"])
    quiet = [line for line in capsys.readouterr().err.splitlines() if "dense.fp32.onnx" in line]
    assert len(quiet) == 1 and len(quiet[0]) < 100 and "parity PASS (n=128)" in quiet[0]
    monkeypatch.setenv(ENV, "1")
    (in_tmp / "again").mkdir()
    export_stage(*fresh_run(trained, in_tmp / "again"), models=["dense"], precisions=["fp32"])
    assert "smallest passing atol" in capsys.readouterr().err
