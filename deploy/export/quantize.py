"""INT8 post-training quantization to explicit Q/DQ nodes with onnxruntime's quantization tools.

Symmetric INT8 for activations and weights (zero points 0) and per-channel weight scales: the Q/DQ form
TensorRT builds INT8 engines from in a strongly typed network, and one ONNX Runtime runs on the CPU,
so the INT8 model's accuracy is measured on the same file TensorRT would consume. Activation ranges
come from min/max calibration on training images the recipe chooses (export.calib_images).

Biases stay floating point (QuantizeBias off): onnxruntime would otherwise store them as INT32 behind a
DequantizeLinear, which TensorRT's ONNX parser rejects (only activation types may feed that layer), and
TensorRT fuses the float bias into the INT8 convolution anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from cplitool.deploy.export.checks import check_model, load_onnx
from cplitool.deploy.export.onnx_export import INPUT
from cplitool.toolchain.errors import CplitoolError
from cplitool.toolchain.io import atomic_path

QUANT_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}


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


def quantize_int8(src: str | Path, dst: str | Path, calibration: Iterable[np.ndarray]) -> int:
    """Write the Q/DQ INT8 version of the FP32 graph `src` to `dst` (checked, atomic); returns the
    number of calibration images used."""
    reader = BatchReader(calibration)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "run pre-processing first" advice: export already inferred shapes and slimmed
    with atomic_path(dst) as tmp:
        try:
            quantize_static(
                str(src),
                str(tmp),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options=QUANT_OPTIONS,
            )
        finally:
            root.setLevel(level)
        checked = check_model(load_onnx(tmp), dst)
        bad = int32_dequantize_inputs(checked)
        if bad:
            raise CplitoolError(f"{dst}: DequantizeLinear of INT32 tensors {bad[:3]}; TensorRT cannot build it")
        onnx.save(checked, str(tmp))
    return reader.images


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
