"""Loading and validating ONNX files: onnx's full checker plus strict shape inference, with errors that name the file.

Every file cplitool writes or reads goes through here, so a truncated download or a hand-edited graph is
reported as a usage error instead of a protobuf traceback.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from cplitool.toolchain.errors import UsageError, first_line


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file (weights included); a missing, empty, truncated or non-ONNX file is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: ONNX file not found")
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: empty file (expected an ONNX model)")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, OSError, RuntimeError) as e:
        raise UsageError(f"{path}: truncated or corrupt ONNX file ({first_line(e)})") from None
    if not model.graph.node:
        raise UsageError(f"{path}: not an ONNX model (the graph has no nodes)")
    return model


def check_model(model: onnx.ModelProto, source: str | Path) -> onnx.ModelProto:
    """Run onnx's full checker and strict shape inference; return the model with inferred shapes filled in."""
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise UsageError(f"{source}: invalid ONNX graph: {first_line(e)}") from None


def load_checked(path: str | Path) -> onnx.ModelProto:
    return check_model(load_onnx(path), path)
