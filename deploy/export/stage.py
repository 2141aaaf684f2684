"""The export stage: every requested model in every requested precision, each file checked before it counts.

For each model (dense, pruned) the FP32 graph is exported first (FP16 and INT8 derive from it), then each
file is compared with PyTorch on real validation images and its accuracy is measured with ONNX Runtime.
The parity, accuracy and calibration images are seeded random samples of their splits (run.seed), the
same for every file of the run, printed and recorded with their size and seed. FP32 and FP16 pass on
element-wise tolerances; INT8 passes unless its paired top-1 drop from the FP32 file exceeds
export.int8_max_drop points with 95% confidence (int8_gate.py). Non-finite weights stop the export; a
file with non-finite outputs fails. A failing file is kept for inspection, marked failed in the manifest,
and fails the stage with its report. With `trt`, each passing file is built into a TensorRT engine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from cplitool.deploy.export.int8_gate import paired_drop
from cplitool.deploy.export.measure import Reference, onnx_correct, onnx_logits, reference
from cplitool.deploy.export.metadata import write_metadata
from cplitool.deploy.export.onnx_export import ExportInfo, export_onnx
from cplitool.deploy.export.parity import compare
from cplitool.deploy.export.precision import to_fp16
from cplitool.deploy.export.quantize import quantize_int8
from cplitool.toolchain.artifacts import ModelInfo, resolve_model
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import DataSplit, seeded_subset
from cplitool.toolchain.errors import CplitoolError, UsageError, typed_first_line
from cplitool.toolchain.finite import NonFiniteError, require_finite_weights
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.paths import shown
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.recipe.sections import PRECISIONS
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.verbosity import verbose

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


@dataclass
class Sample:
    """A seeded random subset of a split that judges the models: how many images of how many, which seed."""

    split: str
    images: int
    of: int
    seed: int

    @classmethod
    def draw(cls, split: str, data: DataSplit, size: int, seed: int) -> tuple[Sample, DataSplit]:
        total = len(data.dataset)  # type: ignore[arg-type]
        chosen = seeded_subset(data, size, seed)
        return cls(split, len(chosen.dataset), total, seed), chosen  # type: ignore[arg-type]

    def text(self) -> str:
        return f"{self.images} of {self.of} {self.split} images"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sampling": "seeded uniform random sample without replacement (run.seed)"}


class Exporter:
    """Exports one recipe's models; holds the sampled validation and calibration data."""

    def __init__(self, recipe: Recipe, run: RunDir, trt: bool) -> None:
        self.recipe, self.run, self.trt = recipe, run, trt
        self.cfg = recipe.export
        self.threads = recipe.run.threads
        self.seed = recipe.run.seed
        val = build_split(recipe.data, "val", augment=False, seed=self.seed)
        self.sample_shape = val.sample_shape
        self.eval_sample, self.eval_split = Sample.draw("validation", val, self.cfg.eval_images, self.seed)
        self.parity_sample, self.parity_split = Sample.draw("validation", val, self.cfg.parity_images, self.seed)
        self.batch = recipe.data.eval_batch_size
        self.calib_sample: Sample | None = None
        self._calib: list[np.ndarray] | None = None
        self._fp32_correct: np.ndarray | None = None
        console.print(
            f"check subsets (seed {self.seed}): accuracy on {self.eval_sample.text()}, "
            f"parity on {self.parity_sample.images}",
            highlight=False,
        )

    def loader(self, data: DataSplit) -> Any:
        return make_loader(data, self.batch, shuffle=False, workers=self.recipe.data.workers)

    def calibration(self) -> list[np.ndarray]:
        """export.calib_images training images, a seeded sample drawn once per run, without augmentation."""
        if self._calib is None:
            train = build_split(self.recipe.data, "train", augment=False, seed=self.seed)
            self.calib_sample, chosen = Sample.draw("training", train, self.cfg.calib_images, self.seed)
            console.print(f"int8 calibration on {self.calib_sample.text()} (seed {self.seed})", highlight=False)
            self._calib = [x.numpy() for x, _ in make_loader(chosen, self.batch, shuffle=False, workers=0)]
        return self._calib

    def samples(self) -> dict[str, Any]:
        """What the manifest records of the subsets that judged the files."""
        chosen = {"accuracy": self.eval_sample, "parity": self.parity_sample, "calibration": self.calib_sample}
        return {k: v.to_dict() for k, v in chosen.items() if v is not None}

    def path(self, which: str, precision: str) -> Path:
        return self.run.path / "onnx" / f"{which}.{precision}.onnx"

    def export(self, src: Source, precisions: list[str]) -> list[ExportedFile]:
        shape = self.sample_shape
        label = f"{src.which} ({src.info.arch}, {src.path.name})"
        require_finite_weights(src.model, label)
        count = count_model(src.model, shape)
        ref = reference(src.model, self.loader(self.parity_split), label)
        fp32 = self.path(src.which, "fp32")
        console.print(f"exporting {src.which} ({src.info.arch}, {count.macs / 1e6:.1f} M MACs) -> {shown(fp32.parent)}")
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
        for precision in ["fp32", *[p for p in PRECISIONS[1:] if p in precisions]]:
            path = self.path(src.which, precision)
            extra: dict[str, Any] = {}
            if precision == "fp16":
                to_fp16(fp32, path, keep_io_fp32=self.cfg.keep_io_fp32)
            elif precision == "int8":
                extra = quantize_int8(fp32, path, self.calibration(), self.cfg.calib_method, self.cfg.int8_keep_ends)
            entry = self.check(src, precision, path, ref, info, extra)
            self.write_metadata(src, entry, count.macs, count.params, info)
            if self.trt and entry.status == "done":
                self.build_engine(entry)
            files.append(entry)
        return files

    def check(
        self, src: Source, precision: str, path: Path, ref: Reference, info: ExportInfo, extra: dict[str, Any]
    ) -> ExportedFile:
        tol = "fp32" if precision == "fp32" else "fp16"
        atol, rtol = getattr(self.cfg, f"atol_{tol}"), getattr(self.cfg, f"rtol_{tol}")
        try:
            report = compare(ref.logits, onnx_logits(path, ref.images, self.batch, self.threads), atol, rtol)
            correct = onnx_correct(path, self.loader(self.eval_split), self.threads, f"accuracy {path.name}")
        except NonFiniteError as e:  # e.g. an FP16 overflow: this file fails, the others are still checked
            return self.failed(src, precision, path, info, extra, str(e))
        if precision == "int8" and self._fp32_correct is None:
            return self.failed(src, precision, path, info, extra, "no FP32 accuracy of this model to compare with")
        acc: dict[str, Any] = {"top1": 100.0 * float(correct.mean()), "images": len(correct), "seed": self.seed}
        if precision == "fp32":
            self._fp32_correct = correct
        if precision == "int8" and self._fp32_correct is not None:  # fp32 is checked first, on the same images
            drop = paired_drop(self._fp32_correct, correct, self.cfg.int8_max_drop)
            acc["drop_vs_fp32"] = drop.to_dict()
            ok = drop.passed
            check = f"top-1 {acc['top1']:.2f}% vs fp32 {100 * float(self._fp32_correct.mean()):.2f}%: {drop.summary()}"
        else:
            ok = report.passed
            check = f"parity {report.summary()}"
        self.show(path, ok, f"top-1 {acc['top1']:.2f}% (n={acc['images']}); {check}")
        if verbose() or not ok:  # the statistics are in the manifest's parity entry either way
            console.print(f"    parity {report.details()}", highlight=False)
        export = {**asdict(info), **extra}
        parity = {**report.to_dict(), "decisive": precision != "int8"}  # int8 is judged on accuracy instead
        return ExportedFile(
            src.which, precision, self.rel(path), "done" if ok else "failed", check, parity, acc, export
        )

    def failed(
        self, src: Source, precision: str, path: Path, info: ExportInfo, extra: dict[str, Any], why: str
    ) -> ExportedFile:
        if precision == "fp32":
            self._fp32_correct = None  # this model's INT8 has nothing to be paired with
        self.show(path, False, why)
        acc = {"top1": float("nan"), "images": 0, "seed": self.seed}
        return ExportedFile(src.which, precision, self.rel(path), "failed", why, {}, acc, {**asdict(info), **extra})

    def show(self, path: Path, ok: bool, text: str) -> None:
        colour = "green" if ok else "red"
        console.print(f"  {path.name}: [{colour}]{'ok' if ok else 'FAILED'}[/{colour}] {text}", highlight=False)

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.run.path))

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
                "cplitool.top1_seed": entry.accuracy["seed"],
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
        samples=exporter.samples(),
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
