"""deploy/trt/build.py executed on the fake TensorRT: profiles, strongly typed flag, timing cache reuse and
mismatch, parser errors, and the engine it writes loading back through the sidecar checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.trt.build import build_engine
from cplitool.deploy.trt.engine import load_engine
from cplitool.toolchain.errors import CplitoolError
from cplitool.toolchain.models import create_model
from cplitool.toolchain.recipe.sections import TrtSection
from tests.deploy.gpu_fakes import FakeGPU, fake_tensorrt


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "dense.fp32.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), path)
    return path


@pytest.fixture
def trt(gpu: FakeGPU, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    module = fake_tensorrt(gpu, gpu_tag=b"H200")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def test_build_writes_engine_sidecar_and_timing_cache(onnx_file: Path, trt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache, engine = tmp_path / "trt.cache", tmp_path / "trt" / "dense.fp32.engine"
    sidecar = build_engine(onnx_file, engine, TrtSection(profile_batches=[64, 1]), cache, "fp32")
    assert trt.log[0] == "create_network(32)"  # 1 << STRONGLY_TYPED on TensorRT 10
    assert "(1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)" in trt.log[-1] and "(64, 1, 8, 8)" in trt.log[-1]
    assert sidecar.profiles == [{"min": 1, "opt": 1, "max": 1}, {"min": 64, "opt": 64, "max": 64}]
    assert sidecar.gpu_name == "NVIDIA H200" and sidecar.compute_capability == "9.0"
    assert cache.read_bytes() == b"cache:H200"
    assert json.loads((tmp_path / "trt" / "dense.fp32.engine.json").read_text())["precision"] == "fp32"
    loaded, side = load_engine(engine)
    assert loaded.num_io_tensors == 2 and side == sidecar


def test_timing_cache_from_another_gpu_warns_and_rebuilds_fresh(
    onnx_file: Path, trt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Catches an ignored set_timing_cache result: the build would go on without any cache attached."""
    cache = tmp_path / "trt.cache"
    cache.write_bytes(b"cache:A100")
    build_engine(onnx_file, tmp_path / "e.engine", TrtSection(), cache, "fp32")
    assert "timing cache refused" in trt.log
    assert "timing cache from another GPU" in " ".join(capsys.readouterr().err.split())
    assert cache.read_bytes() == b"cache:H200"  # replaced by this GPU's


def test_parser_rejection_names_the_file_and_the_errors(trt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx
    from onnx import helper

    bias = helper.make_tensor("b_q", onnx.TensorProto.INT32, [2], [1, 2])
    scale = helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.1])
    node = helper.make_node("DequantizeLinear", ["b_q", "s"], ["y"], name="bias_dq")
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    path = tmp_path / "bad.int8.onnx"
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y], [bias, scale])), str(path))
    with pytest.raises(CplitoolError, match=r"bad\.int8\.onnx: TensorRT's ONNX parser rejected.*only activation types"):
        build_engine(path, tmp_path / "bad.engine", TrtSection(), tmp_path / "c", "int8")


def test_the_fake_refuses_names_tensorrt_10_does_not_have(trt) -> None:  # type: ignore[no-untyped-def]
    """TensorRT 8 spellings removed in 10 fail on the fake as on the real library, so build.py cannot use them."""
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    config = builder.create_builder_config()
    with pytest.raises(AttributeError):
        config.max_workspace_size = 1 << 30  # TensorRT 8; 10 has set_memory_pool_limit
    with pytest.raises(AttributeError):
        builder.build_engine(builder.create_network(0), config)  # removed in 10: build_serialized_network
    with pytest.raises(AttributeError):
        trt.Runtime(trt.Logger()).deserialize_cuda_engine(b"engine:input").get_binding_shape(0)  # removed in 10
