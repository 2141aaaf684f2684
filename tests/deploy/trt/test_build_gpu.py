"""On a GPU host with the trt extra: build engines from checked ONNX files in every precision and run them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cplitool.deploy.export.measure import onnx_logits
from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.export.precision import to_fp16
from cplitool.deploy.export.quantize import quantize_int8
from cplitool.deploy.trt.build import build_engine
from cplitool.deploy.trt.engine import load_engine
from cplitool.toolchain.models import create_model
from cplitool.toolchain.recipe.sections import TrtSection

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_loads_and_agrees_with_onnxruntime(precision: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")  # device buffers: pycuda, cuda-python or torch, whichever works here
    from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner

    torch.manual_seed(0)
    fp32 = tmp_path / "m.fp32.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), fp32)
    path = tmp_path / f"m.{precision}.onnx"
    rng = np.random.default_rng(0)
    if precision == "fp16":
        to_fp16(fp32, path)
    elif precision == "int8":
        quantize_int8(fp32, path, [rng.normal(size=(32, 1, 8, 8)).astype(np.float32) for _ in range(4)])
    cfg = TrtSection(min_batch=1, opt_batch=8, max_batch=16, workspace_mb=256, opt_level=2)
    cache = tmp_path / "trt.cache"
    engine_path = tmp_path / f"m.{precision}.engine"
    sidecar = build_engine(path, engine_path, cfg, cache, precision)
    assert cache.stat().st_size > 0 and sidecar.profiles == [{"min": 1, "opt": 8, "max": 16}]
    engine, loaded = load_engine(engine_path)
    assert engine is not None and loaded == sidecar
    x = rng.normal(size=(8, 1, 8, 8)).astype(np.float32)
    with TensorRTRunner(engine_path) as runner:
        got = runner.infer(x)
    want = onnx_logits(path, x, batch=8)
    np.testing.assert_allclose(got, want, atol=5e-2 if precision != "fp32" else 1e-3, rtol=5e-2)
