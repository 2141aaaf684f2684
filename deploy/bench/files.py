"""`cplitool bench A.onnx [B.onnx]` and `cplitool bench ENGINE.plan [B.plan]`: model files timed without a run.

One file is timed alone. Two are timed interleaved as dense (the first) and pruned (the second), with the
ratio of their paired rounds, exactly as the run's bench does. ONNX files run on ONNX Runtime (CPU, and
CUDA where onnxruntime-gpu is installed), engines on TensorRT (their sidecar gives the input shape).
Settings default to the recipe schema's [bench] defaults; the results print, and --output merges them
into a JSON file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cplitool.deploy.bench.env import environment
from cplitool.deploy.bench.results import stamp
from cplitool.deploy.bench.stage import (
    SCHEMA,
    Skip,
    Target,
    report_skips_and_failures,
    run_targets,
    settings,
    write_merged,
)
from cplitool.deploy.bench.timing import TimingConfig
from cplitool.deploy.limits import check_batch_memory, check_sample
from cplitool.deploy.runners.base import Runner
from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner, gpu_variant
from cplitool.deploy.runners.select import ENGINE_SUFFIXES
from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.paths import regular_input
from cplitool.toolchain.recipe.sections import BenchSection

SUFFIXES = (".onnx", *ENGINE_SUFFIXES)


def is_model_file(ref: str) -> bool:
    return Path(ref).suffix.lower() in SUFFIXES


@dataclass
class ModelFile:
    """A file to time: its per-sample input shape, a batch size baked into it, its precision and MACs."""

    path: Path
    engine: bool
    sample_shape: tuple[int, ...]
    fixed_batch: int | None
    precision: str
    macs: int | None
    batch_range: tuple[int, int] | None = None  # an engine's profiles: smallest min, largest max


def onnx_file(path: Path, input_shape: tuple[int, ...] | None) -> ModelFile:
    from cplitool.deploy.export.checks import graph_input, load_onnx, require_finite_initializers

    model = load_onnx(path)
    require_finite_initializers(model, path)
    inp = graph_input(model, path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    given = input_shape or dims[1:]
    sample = tuple(d for d in given if d is not None)
    if len(sample) != len(dims) - 1:
        raise UsageError(
            f"{path}: input {inp.name!r} has shape {['?' if d is None else d for d in dims]}; pass --input-shape "
            f"with its {len(dims) - 1} per-sample sizes, e.g. --input-shape 3,224,224"
        )
    check_sample(sample, f"{path}: input {inp.name!r}")
    meta = {p.key: p.value for p in model.metadata_props}
    macs = meta.get("cplitool.macs")
    return ModelFile(
        path,
        False,
        sample,
        dims[0],
        meta.get("cplitool.precision", "fp32"),
        int(macs) if macs else None,
    )


def engine_file(path: Path) -> ModelFile:
    from cplitool.deploy.trt.sidecar import Sidecar

    if not path.is_file():
        raise UsageError(f"{path}: TensorRT engine not found")
    side = Sidecar.read(path)
    low = min(p["min"] for p in side.profiles)
    high = max(p["max"] for p in side.profiles)
    return ModelFile(path, True, tuple(side.sample_shape), None, side.precision, None, (low, high))


def model_files(refs: list[str], input_shape: tuple[int, ...] | None) -> dict[str, ModelFile]:
    """{"model": file} for one file, {"dense": first, "pruned": second} for two."""
    if len(refs) > 2:
        raise UsageError(f"bench: give one model file, or two to compare (dense, then pruned); got {len(refs)}")
    paths = [Path(r) for r in refs]
    for p in paths:
        regular_input(p, "model file")
    engines = {p.suffix.lower() in ENGINE_SUFFIXES for p in paths}
    if len(engines) > 1:
        raise UsageError(f"bench: compare like with like: {refs[0]} and {refs[1]} are not both ONNX or both engines")
    if input_shape and True in engines:
        raise UsageError("bench: --input-shape applies to ONNX files; an engine's sidecar gives its shape")
    files = [engine_file(p) if True in engines else onnx_file(p, input_shape) for p in paths]
    if len({f.sample_shape for f in files}) > 1:
        raise UsageError(f"bench: {refs[0]} and {refs[1]} take different inputs: {[f.sample_shape for f in files]}")
    return dict(zip(("dense", "pruned") if len(files) == 2 else ("model",), files, strict=True))


def check_batches(files: dict[str, ModelFile], batches: list[int] | None) -> list[int]:
    """The batches to time: as asked, else the schema's default, else the batch size a file has baked in."""
    fixed = {f.fixed_batch for f in files.values() if f.fixed_batch}
    default = sorted(fixed) if fixed else list(BenchSection().batches)
    chosen = list(batches or default)
    for f in files.values():
        bad = [b for b in chosen if (f.fixed_batch and b != f.fixed_batch) or b < 1]
        if f.batch_range:
            bad += [b for b in chosen if not f.batch_range[0] <= b <= f.batch_range[1]]
        if bad:
            allowed = f"batch {f.fixed_batch}" if f.fixed_batch else f"batches {f.batch_range}"
            raise UsageError(f"{f.path}: cannot run batch {sorted(set(bad))}; it takes {allowed} (--batch)")
    return chosen


def targets(files: dict[str, ModelFile], threads: int, skips: list[Skip]) -> list[Target]:
    names = tuple(files)
    sources = {m: str(f.path) for m, f in files.items()}
    precision = "/".join(dict.fromkeys(f.precision for f in files.values()))
    if next(iter(files.values())).engine:
        check = TensorRTRunner.availability()
        if not check.ok:
            raise UsageError(f"bench: cannot run TensorRT engines here: {check.reason}")
        return [
            Target("tensorrt", "cuda", precision, "engine", sources, lambda m: TensorRTRunner(files[m].path), names)
        ]
    found = []
    for provider in ("cpu", "cuda"):
        check = OnnxRuntimeRunner.availability(provider)
        if not check.ok:
            skips.append(Skip("onnxruntime", provider, check.reason))
            continue

        def make(m: str, provider: str = provider) -> Runner:
            return OnnxRuntimeRunner(files[m].path, provider, threads)

        found.append(Target("onnxruntime", provider, precision, gpu_variant(provider), sources, make, names))
    if not found:
        raise UsageError(f"bench: ONNX Runtime cannot run here: {skips[0].reason}")
    return found


@dataclass
class FilePlan:
    targets: list[Target]
    skips: list[Skip]
    threads: int
    failures: list[dict[str, Any]] = field(default_factory=list)


def bench_files(
    refs: list[str],
    batches: list[int] | None = None,
    threads: int | None = None,
    repeats: int | None = None,
    min_duration_s: float | None = None,
    input_shape: tuple[int, ...] | None = None,
    output: Path | None = None,
) -> dict[str, Any]:
    """Time one model file, or two interleaved as dense and pruned; returns the bench.json-shaped document."""
    files = model_files(refs, input_shape)
    cfg = BenchSection()
    chosen = check_batches(files, batches)
    for f in files.values():
        check_batch_memory(f.sample_shape, chosen, 4, f"{f.path} (--batch, --input-shape)")
    threads = threads or os.cpu_count() or 1
    repeats = repeats or cfg.repeats
    timing = TimingConfig(
        cfg.warmup_ms, cfg.min_duration_s if min_duration_s is None else min_duration_s, cfg.min_iters
    )
    skips: list[Skip] = []
    plan = FilePlan(targets(files, threads, skips), skips, threads)
    dense, pruned = (files[m].macs if m in files else None for m in ("dense", "pruned"))
    ratio = pruned / dense if dense and pruned else None
    shape = next(iter(files.values())).sample_shape
    measurements, comparisons, _ = run_targets(plan, chosen, shape, timing, repeats, ratio)
    report_skips_and_failures(plan)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": " vs ".join(f.path.name for f in files.values()),
        "input_shape": list(shape),
        "models": {m: {"source": str(f.path), "sha256": sha256_file(f.path), "macs": f.macs} for m, f in files.items()},
        "settings": settings(timing, repeats, threads, chosen, [plan.targets[0].backend]),
        "environment": environment(threads),
        "measurements": measurements,
        "comparisons": comparisons,
        "skipped": [s.to_dict() for s in skips],
        "failed": plan.failures,
    }
    doc = stamp(doc)
    return write_merged(output, doc) if output else doc
