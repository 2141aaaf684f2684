"""FP16 ONNX graphs: weights and activations in FP16, graph inputs and outputs kept FP32 unless asked.

This is the form TensorRT's strongly typed networks take FP16 from (TensorRT 10.12+ deprecates the
builder's fp16 switch, TensorRT 11 removes it). onnxruntime's converter is used because it ships with
onnxruntime (no extra dependency) and, unlike onnxconverter-common's original, keeps precision where
an initializer feeds both FP32 and FP16 nodes.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16
from onnxscript import ir
from onnxscript.ir.passes.common import TopologicalSortPass

from cplitool.deploy.export.checks import check_model, load_onnx
from cplitool.toolchain.io import atomic_write


def to_fp16(src: str | Path, dst: str | Path, keep_io_fp32: bool = True) -> Path:
    """Write the FP16 version of the FP32 graph `src` to `dst` (checked, atomic)."""
    fp16 = ir.from_proto(convert_float_to_float16(load_onnx(src), keep_io_types=keep_io_fp32))
    TopologicalSortPass()(fp16)  # the converter appends the input Casts after their consumers
    checked = check_model(ir.to_proto(fp16), dst)
    return atomic_write(dst, lambda p: onnx.save(checked, str(p)))
