"""`cplitool export MODEL.pt`: an ONNX file from a checkpoint without a recipe or a run.

A cplitool artifact names its architecture; a plain state dict (or a training checkpoint holding one)
needs `--model NAME`, and every conv, norm and linear layer is sized from the saved weights, so pruned
widths and another class count load as they are. The input shape is the registry's, with the first
convolution's channels, unless --input-shape says otherwise. Each file is checked against PyTorch on
random inputs (no data set is at hand: enough for parity, never for an accuracy claim) and records its
MACs, parameters and provenance in its metadata. A file that fails parity is kept and exits 1.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cplitool.deploy.export.measure import onnx_logits
from cplitool.deploy.export.metadata import write_metadata
from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.export.parity import ParityReport, compare
from cplitool.deploy.export.precision import to_fp16
from cplitool.toolchain.artifacts import FORMAT, artifact_from_payload, fit_to_state_dict
from cplitool.toolchain.checkpoints import CheckpointOptions, fit_keys, load_into, pick_state
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.io import safe_load, sha256_file
from cplitool.toolchain.models import create_model, input_shape
from cplitool.toolchain.paths import check_output
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe.sections import ExportSection

PARITY_SAMPLES = 64
FILE_PRECISIONS = ("fp32", "fp16")  # int8 calibrates on training images: it needs a recipe's data


@dataclass
class ExportedModelFile:
    path: Path
    precision: str
    parity: ParityReport


def load_checkpoint(path: Path, arch: str | None) -> tuple[nn.Module, str]:
    """The model in `path` and its architecture name: from the artifact, or `arch` for a state dict."""
    payload = safe_load(path)  # a missing file, a FIFO or a device: one line naming it
    if payload.get("format") == FORMAT:
        model, info = artifact_from_payload(payload, path)
        if arch and arch != info.arch:
            raise UsageError(f"{path}: a cplitool artifact of {info.arch!r}, not --model {arch!r}; drop --model")
        return model, info.arch
    if not arch:
        raise UsageError(
            f"{path}: a plain state dict names no architecture: pass --model NAME (`cplitool models` lists them)"
        )
    model = create_model(arch)
    state = fit_keys(pick_state(payload, "", path), model, CheckpointOptions())  # nested, prefixed: as for recipes
    load_into(fit_to_state_dict(model, state), state, path, arch)
    return model.eval(), arch


def sample_shape(model: nn.Module, arch: str, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """--input-shape, else the registry's shape with the first convolution's input channels."""
    if given:
        return given
    shape = list(input_shape(arch))
    first = next((m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)), None)
    if first is not None:
        shape[0] = first.in_channels
    return tuple(shape)


def parity(model: nn.Module, path: Path, shape: tuple[int, ...], precision: str, cfg: ExportSection) -> ParityReport:
    images = np.random.default_rng(0).standard_normal((PARITY_SAMPLES, *shape), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(images)).float().numpy()
    tol = "fp32" if precision == "fp32" else "fp16"
    atol, rtol = getattr(cfg, f"atol_{tol}"), getattr(cfg, f"rtol_{tol}")
    return compare(ref, onnx_logits(path, images, 16), atol, rtol)


def export_file(
    source: Path,
    arch: str | None = None,
    given_shape: tuple[int, ...] | None = None,
    precisions: list[str] | None = None,
    output: Path | None = None,
) -> list[ExportedModelFile]:
    """Export `source` (artifact or state dict) to ONNX in each precision; raise if a parity check failed."""
    chosen = list(dict.fromkeys(precisions or ["fp32"]))
    bad = [p for p in chosen if p not in FILE_PRECISIONS]
    if bad:
        raise UsageError(
            f"export {source}: precision {', '.join(bad)} needs calibration images: export from a recipe; "
            f"a file exports as {' or '.join(FILE_PRECISIONS)}"
        )
    if output and len(chosen) > 1:
        raise UsageError("export: --output names one file: give one --precision with it")
    paths = {p: output or source.with_name(f"{source.stem}.{p}.onnx") for p in chosen}
    for path in paths.values():
        check_output(path, [source], "--output" if output else "export: output")
    model, arch_name = load_checkpoint(source, arch)
    shape = sample_shape(model, arch_name, given_shape)
    cfg = ExportSection()
    with tempfile.TemporaryDirectory() as scratch:  # FP16 alone still converts from an FP32 graph
        fp32 = paths.get("fp32", Path(scratch) / "fp32.onnx")
        export_onnx(model, shape, fp32, opset=cfg.opset, label=f"{source.name} ({arch_name})")
        results = [check(model, source, arch_name, fp32, p, path, shape, cfg) for p, path in paths.items()]
    failed = [r for r in results if not r.parity.passed]
    for r in failed:
        console.print(f"{r.path}: [red]{r.parity.summary()}[/red]\n  {r.parity.details()}", highlight=False)
    if failed:
        raise CplitoolError(f"export: parity failed for {', '.join(str(r.path) for r in failed)} (kept for inspection)")
    return results


def check(
    model: nn.Module,
    source: Path,
    arch: str,
    fp32: Path,
    precision: str,
    path: Path,
    shape: tuple[int, ...],
    cfg: ExportSection,
) -> ExportedModelFile:
    """Convert (FP16) and check one file against PyTorch; record the verdict in its metadata."""
    count = count_model(model, shape)
    if precision == "fp16":
        to_fp16(fp32, path, keep_io_fp32=cfg.keep_io_fp32)
    report = parity(model, path, shape, precision, cfg)
    props: dict[str, Any] = {
        "cplitool.arch": arch,
        "cplitool.precision": precision,
        "cplitool.source": source.name,
        "cplitool.source_sha256": sha256_file(source),
        "cplitool.macs": count.macs,
        "cplitool.params": count.params,
        "cplitool.parity": f"random inputs: {report.summary()}; {report.details()}",
        "cplitool.status": "done" if report.passed else "failed",
    }
    write_metadata(path, props)
    return ExportedModelFile(path, precision, report)
