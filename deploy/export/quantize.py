"""INT8 post-training quantization to explicit Q/DQ nodes with onnxruntime's quantization tools.

Symmetric INT8 for activations and weights (zero points 0) and per-channel weight scales: the Q/DQ form
TensorRT builds INT8 engines from in a strongly typed network, and one ONNX Runtime runs on the CPU,
so the INT8 model's accuracy is measured on the same file TensorRT would consume. Activation ranges
come from calibration on a seeded sample of training images (export.calib_images) with the method
export.calib_method (onnxruntime's MinMax, Entropy or Percentile calibrators). With export.int8_keep_ends
the first convolution (it sees the raw image, whose range quantizes worst) and the last Gemm/MatMul/Conv
(the classifier, whose logits are the output) stay FP32: onnxruntime's nodes_to_exclude keeps their
weights and arithmetic in FP32 (an input tensor shared with quantized consumers still passes a Q/DQ pair).

Biases stay floating point (QuantizeBias off): onnxruntime would otherwise store them as INT32 behind a
DequantizeLinear, which TensorRT's ONNX parser rejects (only activation types may feed that layer), and
TensorRT fuses the float bias into the INT8 convolution anyway.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from cplitool.deploy.export.checks import check_model, load_onnx
from cplitool.deploy.export.onnx_export import INPUT
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.io import atomic_path

QUANT_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
CALIBRATION = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,  # onnxruntime's default percentile, 99.999
}
WEIGHTED = ("Conv", "Gemm", "MatMul")


class BatchReader(CalibrationDataReader):
    """Feeds calibration batches (float32 arrays, batch first) to onnxruntime's calibrator."""

    def __init__(self, batches: Iterable[np.ndarray], input_name: str = INPUT) -> None:
        self.batches: Iterator[np.ndarray] = iter(batches)
        self.input_name = input_name
        self.images = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        self.images += len(batch)
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def even_batches(batches: Iterable[np.ndarray]) -> list[np.ndarray]:
    """The calibration images in batches of one size: onnxruntime's histogram calibrators (entropy,
    percentile) stack every batch's outputs into one array and fail on a short last batch. The size is the
    largest divisor of the image count not above the largest batch given."""
    given = list(batches)
    if len({len(b) for b in given}) <= 1:
        return given
    images = np.concatenate(given)
    size = next(d for d in range(max(len(b) for b in given), 0, -1) if len(images) % d == 0)
    return [images[i : i + size] for i in range(0, len(images), size)]


def end_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the first and the last weighted node (Conv, Gemm, MatMul) in graph order."""
    weighted = [n.name for n in model.graph.node if n.op_type in WEIGHTED and n.name]
    return list(dict.fromkeys([weighted[0], weighted[-1]])) if weighted else []


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    calibration: Iterable[np.ndarray],
    method: str = "minmax",
    keep_ends: bool = False,
) -> dict[str, Any]:
    """Write the Q/DQ INT8 version of the FP32 graph `src` to `dst` (checked, atomic); returns what was done:
    calibration images, method, and the nodes kept in FP32."""
    if method not in CALIBRATION:
        raise UsageError(f"export.calib_method: {method!r} is not one of {', '.join(CALIBRATION)}")
    excluded = end_nodes(load_onnx(src)) if keep_ends else []
    reader = BatchReader(even_batches(calibration))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "run pre-processing first" advice: export already inferred shapes and slimmed
    with atomic_path(dst) as tmp:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print progress to stdout
                quantize_static(
                    str(src),
                    str(tmp),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=excluded,
                    calibrate_method=CALIBRATION[method],
                    extra_options=QUANT_OPTIONS,
                )
        finally:
            root.setLevel(level)
        checked = check_model(load_onnx(tmp), dst)
        bad = int32_dequantize_inputs(checked)
        if bad:
            raise CplitoolError(f"{dst}: DequantizeLinear of INT32 tensors {bad[:3]}; TensorRT cannot build it")
        onnx.save(checked, str(tmp))
    return {"calibration_images": reader.images, "calibration_method": method, "fp32_nodes": excluded}


def int32_dequantize_inputs(model: onnx.ModelProto) -> list[str]:
    """Names of INT32 tensors that feed a DequantizeLinear: what TensorRT's parser refuses in an INT8 graph."""
    graph = model.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        types.setdefault(info.name, info.type.tensor_type.elem_type)
    for node in graph.node:  # Constant nodes hold tensors too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].t.data_type:
            types[node.output[0]] = node.attribute[0].t.data_type
    return [
        n.input[0]
        for n in graph.node
        if n.op_type == "DequantizeLinear" and types.get(n.input[0]) == onnx.TensorProto.INT32
    ]
