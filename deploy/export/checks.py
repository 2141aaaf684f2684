"""Loading and validating ONNX files: onnx's full checker plus strict shape inference, with errors that name the file.

Every file cplitool writes or reads goes through here, so a truncated download or a hand-edited graph is
reported as a usage error instead of a protobuf traceback.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from cplitool.toolchain.errors import UsageError, first_line
from cplitool.toolchain.finite import NonFiniteError, first_non_finite
from cplitool.toolchain.paths import regular_input

FLOAT_INPUTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")  # operator sets onnxruntime ships


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file (weights included); a missing, empty, truncated or non-ONNX file, a FIFO or a device,
    and external weights outside the model's folder (or not regular files) are each a UsageError."""
    path = regular_input(path, "ONNX file")
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: empty file (expected an ONNX model)")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, OSError, RuntimeError) as e:
        raise UsageError(f"{path}: truncated or corrupt ONNX file ({first_line(e)})") from None
    except onnx.checker.ValidationError as e:  # onnx's own refusal of an external-data location
        raise UsageError(f"{path}: refused its external weights: {first_line(e)}") from None
    if not model.graph.node:
        raise UsageError(f"{path}: not an ONNX model (the graph has no nodes)")
    return model


def graph_input(model: onnx.ModelProto, path: str | Path) -> onnx.ValueInfoProto:
    """The one image input a file cplitool runs must have: float or float16, positive fixed sizes, standard
    operator sets onnxruntime knows. Each way a file falls short is a UsageError naming it."""
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise UsageError(f"{path}: expected one graph input (the image batch), found {len(inputs)}: {names}")
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem not in FLOAT_INPUTS:
        found = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else elem
        raise UsageError(f"{path}: input {inp.name!r} holds {found}; expected FLOAT or FLOAT16 images")
    for i, d in enumerate(inp.type.tensor_type.shape.dim):
        if d.HasField("dim_value") and d.dim_value < 1:
            raise UsageError(f"{path}: input {inp.name!r} has size {d.dim_value} in dimension {i}; expected >= 1")
    newest = onnx.defs.onnx_opset_version()
    for op in model.opset_import:
        if op.domain not in STANDARD_DOMAINS:
            raise UsageError(f"{path}: uses custom operators (domain {op.domain!r}) that ONNX Runtime cannot run")
        if op.domain in ("", "ai.onnx") and op.version > newest:
            raise UsageError(f"{path}: opset {op.version} is newer than the newest this onnx knows ({newest})")
    return inp


def check_model(model: onnx.ModelProto, source: str | Path) -> onnx.ModelProto:
    """Run onnx's full checker and strict shape inference; return the model with inferred shapes filled in."""
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise UsageError(f"{source}: invalid ONNX graph: {first_line(e)}") from None


def load_checked(path: str | Path) -> onnx.ModelProto:
    return check_model(load_onnx(path), path)


def require_finite_initializers(model: onnx.ModelProto, path: str | Path) -> None:
    """Raise NonFiniteError naming the first weight (initializer) of the graph that holds a NaN or an infinity."""
    found = first_non_finite((t.name, numpy_helper.to_array(t)) for t in model.graph.initializer)
    if found:
        raise NonFiniteError(f"{path}: weights are not finite: {found}; it cannot be checked, scored or timed")


def check_fits(path: str | Path, sample: tuple[int, ...], where: str) -> None:
    """Refuse (before ONNX Runtime opens it) an ONNX file that cannot take the recipe's images: `sample`
    is one input's shape as `where` (the recipe's data or model keys) sets it; one output, the logits."""
    model = load_onnx(path)
    inp = graph_input(model, path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    fits = len(dims) == len(sample) + 1 and all(d in (None, s) for d, s in zip(dims[1:], sample, strict=True))
    if not fits:
        shown = ["?" if d is None else d for d in dims]
        raise UsageError(f"{path}: input {inp.name!r} has shape {shown}; {where} gives images of {list(sample)}")
    if len(model.graph.output) != 1:
        raise UsageError(f"{path}: {len(model.graph.output)} graph outputs; expected one (the class logits)")
