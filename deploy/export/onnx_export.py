"""torch.onnx export with a dynamic batch axis, optional onnxslim simplification, and onnx's full check.

Exporter choice: the TorchScript exporter (`dynamo=False`) is the default. With torch 2.14 it exports
every registered architecture in well under a second to a few seconds, writes one self-contained file,
and takes a dynamic batch axis through `dynamic_axes`. The dynamo exporter (torch.export + onnxscript) is
the maintained path and is selectable with `export.exporter = "dynamo"`, but here it is 2-10x slower per
model, writes weights to a side file unless `external_data=False`, and has no ONNX function for
`aten._adaptive_avg_pool3d` (C3D). The TorchScript exporter warns that it is deprecated: when it is
removed, the recipe switch is the only change needed, and the parity check guards either path.

onnxslim (pure Python, maintained, used by TensorRT Model Optimizer) is used for simplification rather
than onnxsim, which needs a native build on new Python versions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from cplitool.deploy.export.checks import check_model, load_onnx
from cplitool.deploy.export.rewrite import exportable
from cplitool.toolchain.errors import CplitoolError, first_line
from cplitool.toolchain.io import atomic_path

INPUT, OUTPUT = "input", "logits"


@dataclass
class ExportInfo:
    """What the export did: recorded in the manifest next to the file."""

    opset: int
    exporter: str
    dynamic_batch: bool
    simplified: bool
    nodes: int
    rewritten: list[str] = field(default_factory=list)  # modules replaced by export-only equivalents


def _torch_export(model: nn.Module, sample: torch.Tensor, path: Path, opset: int, exporter: str, dynamic: bool) -> None:
    options: dict[str, Any]
    if exporter == "dynamo":  # it builds opset 18 graphs; converting down fails for Reduce/Resize ops
        options = {
            "dynamo": True,
            "opset_version": max(opset, 18),
            "external_data": False,
            "dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic else None,
            "verbose": False,
        }
    else:
        options = {
            "dynamo": False,
            "opset_version": opset,
            "dynamic_axes": {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic else None,
            "do_constant_folding": True,
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, torch.jit.TracerWarning))
        torch.onnx.export(model, (sample,), str(path), input_names=[INPUT], output_names=[OUTPUT], **options)


def export_onnx(
    model: nn.Module,
    sample_shape: tuple[int, ...],
    path: str | Path,
    *,
    opset: int = 17,
    exporter: str = "torchscript",
    dynamic_batch: bool = True,
    simplify: bool = True,
    label: str = "model",
) -> ExportInfo:
    """Export `model` (eval mode, CPU) for inputs of `sample_shape` per sample; write `path` atomically,
    only after the full checker and strict shape inference pass."""
    path = Path(path)
    model = model.eval().cpu()
    # dynamic: batch 2, so no exporter specialises the batch axis to 1; static: batch 1
    sample = torch.randn(2 if dynamic_batch else 1, *sample_shape)
    model, rewritten = exportable(model, sample)
    with atomic_path(path) as tmp:
        try:
            _torch_export(model, sample, tmp, opset, exporter, dynamic_batch)
        except Exception as e:  # the exporters raise many unrelated types; all mean "cannot export"
            first = first_line(e)
            raise CplitoolError(
                f"{label}: torch.onnx export ({exporter} exporter, opset {opset}, input {tuple(sample.shape)}) "
                f"failed: {first}"
            ) from None
        proto = load_onnx(tmp)
        if simplify:
            import onnxslim

            proto = onnxslim.slim(proto)
        checked = check_model(proto, path)
        onnx.save(checked, str(tmp))
    opset_used = next(o.version for o in checked.opset_import if o.domain in ("", "ai.onnx"))
    return ExportInfo(opset_used, exporter, dynamic_batch, simplify, len(checked.graph.node), rewritten)
