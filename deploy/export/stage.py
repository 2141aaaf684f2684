"""The export stage: every requested model in every requested precision, each file checked before it counts.

For each model (dense, pruned) the FP32 graph is exported first (FP16 and INT8 derive from it), then each
file is compared with PyTorch on real validation images and its accuracy is measured with ONNX Runtime.
FP32 and FP16 pass on element-wise tolerances; INT8 passes when its top-1 is within export.int8_max_drop
points of the FP32 file's. A failing file is kept for inspection, marked failed in the manifest, and fails
the stage with its report. With `trt`, each passing file is built into a TensorRT engine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from cplitool.deploy.export.measure import Reference, onnx_accuracy, onnx_logits, reference, take
from cplitool.deploy.export.metadata import write_metadata
from cplitool.deploy.export.onnx_export import ExportInfo, export_onnx
from cplitool.deploy.export.parity import ParityReport, compare
from cplitool.deploy.export.precision import to_fp16
from cplitool.deploy.export.quantize import quantize_int8
from cplitool.toolchain.artifacts import ModelInfo, resolve_model
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import DataSplit
from cplitool.toolchain.errors import CplitoolError, UsageError, typed_first_line
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.recipe.sections import PRECISIONS
from cplitool.toolchain.rundir import RunDir

MODELS = ("dense", "pruned")
SECTIONS = ("run", "model", "data", "prune", "finetune", "export")


@dataclass
class Source:
    """A model to export: which one, the module, what its artifact says, and the artifact file."""

    which: str
    model: nn.Module
    info: ModelInfo
    path: Path
    sha256: str


@dataclass
class ExportedFile:
    """One ONNX file's manifest entry."""

    model: str
    precision: str
    path: str
    status: str  # done | failed
    check: str  # what decided the status
    parity: dict[str, Any]
    accuracy: dict[str, Any]
    export: dict[str, Any] = field(default_factory=dict)
    engine: str | None = None
    engine_build_seconds: float | None = None
    engine_status: str | None = None  # built | failed (with --trt)
    engine_reason: str | None = None  # why the build failed


def check_choices(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise UsageError(f"{what}: unknown value(s) {', '.join(map(repr, bad))}; expected {', '.join(allowed)}")
    return list(dict.fromkeys(values))


def load_sources(recipe: Recipe, run: RunDir, models: list[str], explicit: bool) -> list[Source]:
    """Resolve dense/pruned; "pruned" is the fine-tuned artifact when fine-tuning is done, else the pruned one.
    A pruned model that does not exist yet is skipped with a note unless it was asked for explicitly."""
    sources = []
    for which in models:
        stage = "finetuned" if which == "pruned" and run.artifact("finetune") else which
        if which == "pruned" and not explicit and run.artifact("prune") is None and stage == "pruned":
            console.print(f"no pruned model in {run.path} yet (run `cplitool prune`): exporting dense only")
            continue
        model, info, path = resolve_model(recipe, run, stage)
        sources.append(Source(which, model, info, path, sha256_file(path)))
    return sources


def stage_key(recipe: Recipe, sources: list[Source], precisions: list[str], trt: bool) -> str:
    parts = {
        "sections": recipe.section_hash(*SECTIONS, *(("trt",) if trt else ())),
        "sources": {s.which: s.sha256 for s in sources},
        "precisions": sorted(precisions),
        "trt": trt,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def calibration_batches(recipe: Recipe) -> list[np.ndarray]:
    """export.calib_images training images, drawn with the run's seed, without augmentation."""
    train = build_split(recipe.data, "train", augment=False, seed=recipe.run.seed)
    loader = make_loader(train, recipe.data.eval_batch_size, shuffle=True, seed=recipe.run.seed, workers=0)
    return [x for x, _ in take(loader, recipe.export.calib_images)]


class Exporter:
    """Exports one recipe's models; holds the validation data and the per-model reference outputs."""

    def __init__(self, recipe: Recipe, run: RunDir, trt: bool) -> None:
        self.recipe, self.run, self.trt = recipe, run, trt
        self.cfg = recipe.export
        self.threads = recipe.run.threads
        self.val: DataSplit = build_split(recipe.data, "val", augment=False, seed=recipe.run.seed)
        self.batch = recipe.data.eval_batch_size
        self._calib: list[np.ndarray] | None = None

    def loader(self) -> Any:
        return make_loader(self.val, self.batch, shuffle=False, workers=self.recipe.data.workers)

    def calibration(self) -> list[np.ndarray]:
        if self._calib is None:
            self._calib = calibration_batches(self.recipe)
        return self._calib

    def path(self, which: str, precision: str) -> Path:
        return self.run.path / "onnx" / f"{which}.{precision}.onnx"

    def export(self, src: Source, precisions: list[str]) -> list[ExportedFile]:
        shape = self.val.sample_shape
        count = count_model(src.model, shape)
        ref = reference(src.model, self.loader(), self.cfg.parity_images)
        fp32 = self.path(src.which, "fp32")
        console.print(f"exporting {src.which} ({src.info.arch}, {count.macs / 1e6:.1f} M MACs) -> {fp32.parent}")
        info = export_onnx(
            src.model,
            shape,
            fp32,
            opset=self.cfg.opset,
            exporter=self.cfg.exporter,
            dynamic_batch=self.cfg.dynamic_batch,
            simplify=self.cfg.simplify,
            label=f"{src.which} ({src.info.arch})",
        )
        files: list[ExportedFile] = []
        fp32_top1 = 0.0
        for precision in ["fp32", *[p for p in PRECISIONS[1:] if p in precisions]]:
            path = self.path(src.which, precision)
            extra: dict[str, Any] = {}
            if precision == "fp16":
                to_fp16(fp32, path, keep_io_fp32=self.cfg.keep_io_fp32)
            elif precision == "int8":
                extra["calibration_images"] = quantize_int8(fp32, path, self.calibration())
            entry = self.check(src, precision, path, ref, info, fp32_top1, extra)
            if precision == "fp32":
                fp32_top1 = entry.accuracy["top1"]
            self.write_metadata(src, entry, count.macs, count.params, info)
            if self.trt and entry.status == "done":
                self.build_engine(entry)
            files.append(entry)
        return files

    def check(
        self,
        src: Source,
        precision: str,
        path: Path,
        ref: Reference,
        info: ExportInfo,
        fp32_top1: float,
        extra: dict[str, Any],
    ) -> ExportedFile:
        tol = "fp32" if precision == "fp32" else "fp16"
        atol, rtol = getattr(self.cfg, f"atol_{tol}"), getattr(self.cfg, f"rtol_{tol}")
        report: ParityReport = compare(ref.logits, onnx_logits(path, ref.images, self.batch, self.threads), atol, rtol)
        acc = onnx_accuracy(path, self.loader(), self.cfg.eval_images, self.threads, f"accuracy {path.name}")
        if precision == "int8":
            drop = fp32_top1 - acc["top1"]
            acc["drop_vs_fp32"] = drop
            ok = drop <= self.cfg.int8_max_drop
            check = f"top-1 {acc['top1']:.2f}% vs fp32 {fp32_top1:.2f}% (drop {drop:.2f} <= {self.cfg.int8_max_drop:g})"
        else:
            ok = report.passed
            check = f"parity {report.summary()}"
        status = "done" if ok else "failed"
        colour = "green" if ok else "red"
        console.print(
            f"  {path.name}: [{colour}]{'ok' if ok else 'FAILED'}[/{colour}] top-1 {acc['top1']:.2f}% "
            f"({acc['images']} images); {check}",
            highlight=False,
        )
        export = {**asdict(info), **extra}
        rel = str(path.relative_to(self.run.path))
        parity = {**report.to_dict(), "decisive": precision != "int8"}  # int8 is judged on accuracy instead
        return ExportedFile(src.which, precision, rel, status, check, parity, acc, export)

    def write_metadata(self, src: Source, entry: ExportedFile, macs: int, params: int, info: ExportInfo) -> None:
        write_metadata(
            self.run.path / entry.path,
            {
                "cplitool.model": src.which,
                "cplitool.arch": src.info.arch,
                "cplitool.precision": entry.precision,
                "cplitool.recipe_hash": self.recipe.section_hash(*SECTIONS),
                "cplitool.source": src.path.name,
                "cplitool.source_sha256": src.sha256,
                "cplitool.macs": macs,
                "cplitool.params": params,
                "cplitool.top1": f"{entry.accuracy['top1']:.4f}",
                "cplitool.top1_images": entry.accuracy["images"],
                "cplitool.top1_runtime": "onnxruntime-cpu",
                "cplitool.parity": entry.check,
                "cplitool.status": entry.status,
                "cplitool.opset": info.opset,
                "cplitool.exporter": info.exporter,
            },
        )

    def build_engine(self, entry: ExportedFile) -> None:
        """Build the file's engine; a failure (TensorRT's or the GPU's) is recorded on the entry with its
        reason and the export goes on with the other files."""
        from cplitool.deploy.trt.build import build_engine

        onnx_path = self.run.path / entry.path
        engine = self.run.path / "trt" / f"{entry.model}.{entry.precision}.engine"
        cache = Path(self.recipe.trt.timing_cache) if self.recipe.trt.timing_cache else self.run.path / "trt.cache"
        try:
            sidecar = build_engine(onnx_path, engine, self.recipe.trt, cache, entry.precision)
        except Exception as e:  # any library's error: this file's engine failed, the others may not
            entry.engine_status, entry.engine_reason = "failed", typed_first_line(e)
            console.print(f"  {engine.name}: [red]FAILED[/red] {entry.engine_reason}", highlight=False)
            return
        entry.engine_status = "built"
        entry.engine = str(engine.relative_to(self.run.path))
        entry.engine_build_seconds = sidecar.build_seconds
        console.print(
            f"  {engine.name}: built in {sidecar.build_seconds:.1f} s ({sidecar.gpu_name}, TensorRT {sidecar.tensorrt_version})"
        )


def export_stage(
    recipe: Recipe,
    run: RunDir,
    models: list[str] | None = None,
    precisions: list[str] | None = None,
    trt: bool = False,
) -> dict[str, Any]:
    """Export, check and record; returns the manifest entry of stage "export" (raises when a file failed)."""
    if trt:
        from cplitool.deploy.trt.host import require_tensorrt

        require_tensorrt()  # before any work: --trt without TensorRT is an error, never a silent skip
    chosen_precisions = check_choices(precisions or recipe.export.precisions, PRECISIONS, "precision")
    chosen_models = check_choices(models or list(MODELS), MODELS, "model")
    sources = load_sources(recipe, run, chosen_models, explicit=models is not None)
    key = stage_key(recipe, sources, chosen_precisions, trt)
    previous = run.stage("export")
    if previous and run.up_to_date("export", key) and not engine_failures(previous):
        console.print(f"export is up to date ({len(previous.get('files', []))} files in {run.path / 'onnx'})")
        return previous
    exporter = Exporter(recipe, run, trt)
    files = [f for src in sources for f in exporter.export(src, chosen_precisions)]
    failed = [f for f in files if f.status != "done"]
    metrics = {
        f"{f.model}.{f.precision}": {
            "top1": f.accuracy["top1"],
            "status": f.status,
            "images": f.accuracy["images"],
            **({"engine": f.engine_status} if f.engine_status else {}),
        }
        for f in files
    }
    entry = run.record(
        "export",
        run.path / "onnx",
        key,
        metrics,
        status="failed" if failed else "done",
        files=[asdict(f) for f in files],
    )
    if failed:
        lines = "; ".join(f"{f.path}: {f.check}" for f in failed)
        raise CplitoolError(f"export check failed (files kept for inspection, marked failed in the manifest): {lines}")
    broken = engine_failures(entry)
    if broken:
        raise CplitoolError(
            f"TensorRT engine build failed for {len(broken)} of {len(files)} files (the others were built; "
            f"reasons in the manifest): {'; '.join(broken)}"
        )
    return entry


def engine_failures(entry: dict[str, Any]) -> list[str]:
    """'<onnx path>: <reason>' for each file of a recorded export whose engine failed to build."""
    return [
        f"{f['path']}: {f.get('engine_reason')}" for f in entry.get("files", []) if f.get("engine_status") == "failed"
    ]
