"""INT8 post-training quantization to explicit Q/DQ nodes with onnxruntime's quantization tools.

Symmetric INT8 for activations and weights (zero points 0) and per-channel weight scales: the Q/DQ form
TensorRT builds INT8 engines from in a strongly typed network, and one ONNX Runtime runs on the CPU,
so the INT8 model's accuracy is measured on the same file TensorRT would consume. Activation ranges
come from min/max calibration on training images the recipe chooses (export.calib_images).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from deploy.export.checks import check_model, load_onnx
from deploy.export.onnx_export import INPUT
from toolchain.io import atomic_path


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
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )
        finally:
            root.setLevel(level)
        checked = check_model(load_onnx(tmp), dst)
        onnx.save(checked, str(tmp))
    return reader.images
