"""`cplitool.export`: one model to one checked ONNX file (FP32, FP16 or INT8), compared with PyTorch.

The exporter, the FP16 and INT8 conversions and the parity rule are `cplitool export`'s (deploy/export).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cplitool.deploy.export.measure import onnx_logits
from cplitool.deploy.export.onnx_export import ExportInfo, export_onnx
from cplitool.deploy.export.parity import ParityReport, compare
from cplitool.deploy.export.precision import to_fp16
from cplitool.deploy.export.quantize import quantize_int8
from cplitool.inputs import sample_shape
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.recipe.sections import PRECISIONS, ExportSection

WHERE = "cplitool.export"
PARITY_SAMPLES = 16  # random inputs for the parity check when the caller gives none


@dataclass
class ExportResult:
    """The written file, how it was exported, and its comparison with the PyTorch model."""

    path: Path
    precision: str
    info: ExportInfo
    parity: ParityReport

    @property
    def passed(self) -> bool:
        """FP32/FP16 pass on the tolerance rule; INT8 is judged on accuracy, which needs labels (not here)."""
        return self.precision == "int8" or self.parity.passed


def tolerances(precision: str) -> tuple[float, float]:
    """The recipe defaults: export.atol_fp32/rtol_fp32, or the fp16 pair for reduced precisions."""
    cfg, tol = ExportSection(), "fp32" if precision == "fp32" else "fp16"
    return getattr(cfg, f"atol_{tol}"), getattr(cfg, f"rtol_{tol}")


def as_numpy_batches(calibration: Iterable[Any]) -> list[np.ndarray]:
    """Calibration batches: tensors, arrays, or (images, labels) pairs from a loader."""
    out = []
    for batch in calibration:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        out.append(np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float32))
    if not out:
        raise UsageError(f"{WHERE}: calibration yielded no batches")
    return out


def export(
    model: nn.Module | str | Path,
    path: str | Path,
    *,
    example_input: torch.Tensor | None = None,
    input_shape: Sequence[int] | None = None,
    precision: str = "fp32",
    calibration: Iterable[Any] | None = None,
    opset: int = 17,
    exporter: str = "torchscript",
    dynamic_batch: bool = True,
    simplify: bool = True,
    check_input: torch.Tensor | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> ExportResult:
    """Export `model` (an nn.Module or a cplitool artifact path) to the ONNX file `path`, checked.

    The file passes onnx's full checker and strict shape inference, then ONNX Runtime's outputs are
    compared with PyTorch's on `check_input` (default: 16 random inputs) under Polygraphy's rule with the
    recipe's default tolerances; an FP32/FP16 file that fails raises an error (the file is kept to inspect).
    INT8 needs `calibration`: batches (or a loader) of typical inputs.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"{WHERE}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and calibration is None:
        raise UsageError(f"{WHERE}: int8 needs calibration=... (batches or a loader of typical inputs)")
    if isinstance(model, str | Path):
        from cplitool.loading import load

        model = load(model)
    shape = sample_shape(example_input, input_shape, WHERE)
    path = Path(path)
    model = model.eval().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = path if precision == "fp32" else Path(tmp) / "fp32.onnx"
        info = export_onnx(
            model, shape, fp32, opset=opset, exporter=exporter, dynamic_batch=dynamic_batch, simplify=simplify
        )
        if precision == "fp16":
            to_fp16(fp32, path)
        elif precision == "int8":
            cfg = ExportSection()  # the recipe defaults: calibration method, FP32 ends
            quantize_int8(fp32, path, as_numpy_batches(calibration or []), cfg.calib_method, cfg.int8_keep_ends)
    x = check_input if check_input is not None else torch.randn(PARITY_SAMPLES, *shape)
    with torch.no_grad():
        ref = model(x.float()).numpy()
    default_atol, default_rtol = tolerances(precision)
    report = compare(
        ref,
        onnx_logits(path, x.numpy(), len(x)),
        default_atol if atol is None else atol,
        default_rtol if rtol is None else rtol,
    )
    result = ExportResult(path, precision, info, report)
    if not result.passed:
        raise CplitoolError(f"{path}: parity check failed: {report.summary()}")
    return result
