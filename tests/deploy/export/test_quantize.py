"""INT8 Q/DQ graphs that TensorRT's ONNX parser accepts: no DequantizeLinear of an INT32 tensor, in any INT8 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.export.quantize import int32_dequantize_inputs, quantize_int8
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.models import create_model

# Plain chain, residual net with a classifier Gemm, and a deeper VGG: every layer kind the recipes quantize.
ARCHS = {"quick_vgg": (1, 8, 8), "resnet20": (3, 16, 16), "vgg16_cifar": (3, 32, 32)}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_int8_graph_has_float_biases_and_no_int32_dequantize(arch: str, tmp_path: Path) -> None:
    """Catches QuantizeBias left at onnxruntime's default (True): every Conv/Gemm bias then becomes an INT32
    initializer behind a DequantizeLinear, and TensorRT refuses to build the engine."""
    torch.manual_seed(0)
    shape = ARCHS[arch]
    fp32, int8 = tmp_path / "m.fp32.onnx", tmp_path / "m.int8.onnx"
    export_onnx(create_model(arch, 10), shape, fp32)
    rng = np.random.default_rng(0)
    quantize_int8(fp32, int8, [rng.standard_normal((4, *shape), dtype=np.float32) for _ in range(2)])
    model = onnx.load(str(int8))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    assert int32_dequantize_inputs(model) == []
    inits = {t.name: t for t in model.graph.initializer}
    biases = [inits[n.input[2]] for n in model.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2]
    assert biases and all(b.data_type == onnx.TensorProto.FLOAT for b in biases)


def test_every_int8_file_in_the_repository_is_parseable_by_tensorrt() -> None:
    """Any committed INT8 ONNX file (fixtures, examples) is held to the same rule."""
    root = Path(__file__).resolve().parents[3]
    files = [p for p in root.rglob("*int8*.onnx") if ".venv" not in p.parts and "runs" not in p.parts]
    for path in files:
        assert int32_dequantize_inputs(onnx.load(str(path))) == [], path


def test_an_int32_dequantize_is_found() -> None:
    """The checker itself: an INT32 initializer (or Constant) into DequantizeLinear is named."""
    bias = helper.make_tensor("b_q", onnx.TensorProto.INT32, [2], [1, 2])
    const = helper.make_node("Constant", [], ["c_q"], value=helper.make_tensor("c", onnx.TensorProto.INT32, [1], [3]))
    nodes = [
        const,
        helper.make_node("DequantizeLinear", ["b_q", "s"], ["b"]),
        helper.make_node("DequantizeLinear", ["c_q", "s"], ["c"]),
        helper.make_node("DequantizeLinear", ["x_q", "s"], ["x"]),
    ]
    scale = helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.1])
    x_q = helper.make_tensor_value_info("x_q", onnx.TensorProto.INT8, [2])
    outs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [None]) for n in ("b", "c", "x")]
    graph = helper.make_graph(nodes, "g", [x_q], outs, initializer=[bias, scale])
    assert int32_dequantize_inputs(helper.make_model(graph)) == ["b_q", "c_q"]


def test_quantize_refuses_to_write_an_int32_dequantize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If onnxruntime ever quantized biases again, the file is not written and the error says why."""
    import cplitool.deploy.export.quantize as quantize

    monkeypatch.setattr(quantize, "QUANT_OPTIONS", {**quantize.QUANT_OPTIONS, "QuantizeBias": True})
    torch.manual_seed(0)
    fp32, int8 = tmp_path / "m.fp32.onnx", tmp_path / "m.int8.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), fp32)
    batches = [np.random.default_rng(0).standard_normal((4, 1, 8, 8), dtype=np.float32)]
    with pytest.raises(CplitoolError, match="DequantizeLinear of INT32 tensors"):
        quantize_int8(fp32, int8, batches)
    assert not int8.exists()


def quantized_weights(path: Path) -> set[str]:
    """Names of the Conv/Gemm/MatMul nodes whose weight is INT8 behind a DequantizeLinear (not a float tensor)."""
    model = onnx.load(str(path))
    dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in dq}


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_keep_ends_leaves_the_first_conv_and_the_classifier_in_fp32(method: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    fp32 = tmp_path / "m.fp32.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), fp32)
    batches = [np.random.default_rng(0).standard_normal((8, 1, 8, 8), dtype=np.float32)]
    weighted = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type in ("Conv", "Gemm")]
    plain, ends = tmp_path / "plain.onnx", tmp_path / "ends.onnx"
    assert quantize_int8(fp32, plain, batches, method)["fp32_nodes"] == []
    made = quantize_int8(fp32, ends, batches, method, keep_ends=True)
    assert made == {"calibration_images": 8, "calibration_method": method, "fp32_nodes": [weighted[0], weighted[-1]]}
    assert quantized_weights(plain) == set(weighted)
    assert quantized_weights(ends) == set(weighted[1:-1])


def test_unknown_calibration_method_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"export\.calib_method: 'kl' is not one of minmax, entropy, percentile"):
        quantize_int8(tmp_path / "absent.onnx", tmp_path / "x.onnx", [], "kl")


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_takes_a_short_last_batch(method: str, tmp_path: Path) -> None:
    """512 images in batches of 500 end with 12: onnxruntime's histogram collector fails on uneven batches."""
    torch.manual_seed(0)
    fp32 = tmp_path / "m.fp32.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), fp32)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 1, 8, 8), dtype=np.float32) for n in (10, 10, 4)]
    assert quantize_int8(fp32, tmp_path / "m.int8.onnx", batches, method)["calibration_images"] == 24


def test_even_batches_keep_every_image_in_equal_sizes() -> None:
    from cplitool.deploy.export.quantize import even_batches

    batches = [np.arange(n, dtype=np.float32).reshape(n, 1) for n in (500, 12)]
    out = even_batches(batches)
    assert {len(b) for b in out} == {256} and sum(map(len, out)) == 512
    assert np.array_equal(np.concatenate(out), np.concatenate(batches))
    same = [np.zeros((4, 1))] * 3
    assert even_batches(same) == same
