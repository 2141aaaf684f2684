"""The `bench` stage: dense against pruned on every available backend, written to <run>/bench.json.

Torch runs the artifacts themselves; ONNX Runtime and TensorRT run the files the export stage listed.
A backend that cannot run here is skipped with the reason, never silently. Each (backend, device,
precision, variant, batch) is measured with dense and pruned interleaved, so their ratio is fair.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cplitool.deploy.bench.compare import Comparison, interleaved
from cplitool.deploy.bench.env import cuda_visible, device_label, environment
from cplitool.deploy.bench.results import merge, read_previous, stamp
from cplitool.deploy.bench.timing import TimingConfig, trace_rows
from cplitool.deploy.runners.base import Runner
from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner, gpu_variant
from cplitool.deploy.runners.select import ENGINE_SUFFIXES
from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner
from cplitool.deploy.runners.torch_runner import TorchRunner, precision_label
from cplitool.deploy.trt.sidecar import engine_precision_label
from cplitool.toolchain.artifacts import resolve_model
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.data.registry import recipe_input_shape
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError, UsageError, first_line, typed_first_line
from cplitool.toolchain.finite import require_finite_weights
from cplitool.toolchain.io import sha256_file, write_json
from cplitool.toolchain.progress import console, progress_bar
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.recipe.sections import BACKENDS
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.verbosity import verbose

SCHEMA = "cplitool-bench/1"
MODELS = ("dense", "pruned")


@dataclass
class Target:
    """One way of running both models: backend, device, precision and variant (eager, cudagraph, ...)."""

    backend: str
    device: str
    precision: str
    variant: str
    sources: dict[str, str]  # model -> what is run (artifact or file), for the record
    make: Callable[[str], Runner]
    models: tuple[str, ...] = MODELS  # one model (a file benched alone) has no ratio


@dataclass
class Skip:
    backend: str
    device: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return vars(self)


def exported_files(run: RunDir) -> list[dict[str, Any]]:
    """The export stage's file list (model, precision, path, status), paths made absolute."""
    entry = run.stage("export") or {}
    if entry.get("status") != "done":
        return []
    files = []
    for item in entry.get("files", []):
        if not isinstance(item, dict) or item.get("status", "ok") not in ("ok", "done", "passed"):
            continue
        for key in ("path", "engine"):
            if item.get(key):
                path = Path(item[key])
                files.append({**item, "path": str(path if path.is_absolute() else run.path / path)})
    return files


def pairs(files: list[dict[str, Any]], engines: bool) -> dict[str, dict[str, str]]:
    """precision -> {dense: path, pruned: path} for ONNX files or for engines."""
    out: dict[str, dict[str, str]] = {}
    for f in files:
        is_engine = Path(f["path"]).suffix in ENGINE_SUFFIXES
        if is_engine == engines and (is_engine or Path(f["path"]).suffix == ".onnx"):
            out.setdefault(f.get("precision", "fp32"), {})[f.get("model", "")] = f["path"]
    return out


class Planner:
    """Collects the targets that can run here and the skips with their reasons."""

    def __init__(self, recipe: Recipe, run: RunDir, threads: int) -> None:
        self.recipe, self.run, self.threads = recipe, run, threads
        self.targets: list[Target] = []
        self.skips: list[Skip] = []
        self.failures: list[dict[str, Any]] = []
        self.files = exported_files(run)

    def torch(self, models: dict[str, Any], sources: dict[str, str]) -> None:
        def maker(device: str, precision: str, graphs: bool) -> Callable[[str], Runner]:
            return lambda m: TorchRunner(models[m], device, precision, graphs, self.threads)

        self.targets.append(Target("torch", "cpu", "fp32", "eager", sources, maker("cpu", "fp32", False)))
        cuda = TorchRunner.availability("cuda")
        if not cuda.ok:
            self.skips.append(Skip("torch", "cuda", cuda.reason))
            return
        cfg = self.recipe.bench
        for precision in ["fp32", "fp16"] if cfg.fp16 else ["fp32"]:
            for graphs in [False, True] if cfg.cuda_graphs else [False]:
                variant = "cudagraph" if graphs else "eager"
                make = maker("cuda", precision, graphs)
                label = precision_label("cuda", precision)  # fp32 on Ampere and newer runs as TF32
                self.targets.append(Target("torch", "cuda", label, variant, sources, make))

    def _onnx_pairs(self, backend: str, device: str, engines: bool) -> dict[str, dict[str, str]]:
        found = pairs(self.files, engines)
        if not found:
            what = "TensorRT engines" if engines else "ONNX files"
            flag = " --trt" if engines else ""
            self.skips.append(
                Skip(backend, device, f"no {what} in {self.run.path}: run `cplitool export{flag} {self.recipe.source}`")
            )
        for precision, files in list(found.items()):
            missing = [m for m in MODELS if m not in files]
            if missing:
                self.skips.append(Skip(backend, device, f"{precision}: no {' or '.join(missing)} file was exported"))
                del found[precision]
        return found

    def onnxruntime(self) -> None:
        devices = []
        for provider, device in (("cpu", "cpu"), ("cuda", "cuda")):
            check = OnnxRuntimeRunner.availability(provider)
            if check.ok:
                devices.append((provider, device))
            else:
                self.skips.append(Skip("onnxruntime", device, check.reason))
        if not devices:
            return
        for precision, files in self._onnx_pairs("onnxruntime", "cpu", engines=False).items():
            for provider, device in devices:

                def make(m: str, files: dict[str, str] = files, provider: str = provider) -> Runner:
                    return OnnxRuntimeRunner(files[m], provider, self.threads)

                self.targets.append(Target("onnxruntime", device, precision, gpu_variant(provider), files, make))

    def tensorrt(self) -> None:
        check = TensorRTRunner.availability()
        if not check.ok:
            self.skips.append(Skip("tensorrt", "cuda", check.reason))
            return
        for precision, files in self._onnx_pairs("tensorrt", "cuda", engines=True).items():

            def make(m: str, files: dict[str, str] = files) -> Runner:
                return TensorRTRunner(files[m])

            label = engine_precision_label(files["dense"], precision)  # fp32 engines on Ampere+ may use TF32
            self.targets.append(Target("tensorrt", "cuda", label, "engine", files, make))


def pruned_name(run: RunDir) -> str:
    """The pruned model to bench: the fine-tuned one when fine-tuning has finished, else the pruned one."""
    return "finetuned" if run.artifact("finetune") is not None else "pruned"


def measure_target(
    target: Target, batch: int, shape: tuple[int, ...], cfg: TimingConfig, repeats: int
) -> tuple[Comparison, dict[str, Any]]:
    """The interleaved comparison, and what the runners report about how they ran (I/O library, providers)."""
    x = np.random.default_rng(batch).standard_normal((batch, *shape), dtype=np.float32)
    with contextlib.ExitStack() as stack:
        runners = {m: stack.enter_context(target.make(m)) for m in target.models}
        inputs = {m: x.astype(r.input_dtype, copy=False) for m, r in runners.items()}
        ratio = ("pruned", "dense") if target.models == MODELS else None
        result = interleaved(runners, inputs, cfg, repeats, ratio=ratio)
        return result, next(iter(runners.values())).details()


def failure_reason(e: BaseException) -> str:
    """One line: a CplitoolError's own message, else the exception's type and first line."""
    return first_line(e) if isinstance(e, CplitoolError) else typed_first_line(e)


class Plan(Protocol):
    """What run_targets needs of a planner: the targets, where skips and failures go, the CPU threads."""

    targets: list[Target]
    skips: list[Skip]
    failures: list[dict[str, Any]]
    threads: int


def run_targets(
    plan: Plan,
    batches: list[int],
    shape: tuple[int, ...],
    timing: TimingConfig,
    repeats: int,
    macs_ratio: float | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every target at every batch: bench.json's measurement and comparison rows, and the traces.
    A target whose library turns out missing is a skip; any other error (TensorRT's, CUDA's, a bad file) is
    recorded in plan.failures with its reason and the other targets still run."""
    measurements: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    with progress_bar() as bar:
        task = bar.add_task("bench", total=len(plan.targets) * len(batches), unit="config")
        for target in plan.targets:
            label = device_label(target.device)
            for batch in batches:
                bar.update(task, description=f"bench b{batch} {target.backend} {target.device} {target.precision}")
                key = {
                    "backend": target.backend,
                    "device": label,
                    "precision": target.precision,
                    "variant": target.variant,
                    "batch": batch,
                    "threads": plan.threads if target.device == "cpu" else None,
                }
                try:
                    result, runtime = measure_target(target, batch, shape, timing, repeats)
                except MissingDependencyError as e:
                    plan.skips.append(Skip(target.backend, target.device, f"{target.precision} batch {batch}: {e}"))
                    bar.advance(task)
                    continue
                except Exception as e:  # one target's failure (CUDA, TensorRT, OOM) never loses the run
                    plan.failures.append({**key, "status": "failed", "reason": failure_reason(e)})
                    bar.advance(task)
                    continue
                rows = result.measurement_rows(key, target.sources)
                measurements += [{**row, "runtime": runtime} for row in rows] if runtime else rows
                if result.ratio is not None:
                    comparisons.append(result.comparison_row(key, macs_ratio))
                if timing.trace:
                    traces += [
                        {**key, "model": m, "trace": trace_rows(result.measurements[m].samples)} for m in target.models
                    ]
                bar.advance(task)
    return measurements, comparisons, traces


def skip_lines(skips: list[Skip], gpu_host: bool, detailed: bool) -> list[str]:
    """One line per skip, except on a host without any CUDA device: there the GPU skips are one line (their
    install advice cannot help here; the reasons stay in bench.json and show with --verbose)."""
    gpu = [] if gpu_host or detailed else [s for s in skips if s.device != "cpu"]
    lines = [f"bench: skipped {s.backend} ({s.device}): {s.reason}" for s in skips if s not in gpu]
    if gpu:
        names = ", ".join(dict.fromkeys(s.backend for s in gpu))
        lines.append(f"bench: GPU backends skipped ({names}): no CUDA device; see `cplitool doctor`")
    return lines


def report_skips_and_failures(plan: Plan) -> None:
    for line in skip_lines(plan.skips, cuda_visible(), verbose()):
        console.print(line, highlight=False, markup=False)
    for f in plan.failures:
        console.print(
            f"bench: FAILED {f['backend']} {f['precision']} {f['variant']} b{f['batch']}: {f['reason']}",
            highlight=False,
            markup=False,
        )


def settings(
    timing: TimingConfig, repeats: int, threads: int, batches: list[int], backends: list[str]
) -> dict[str, Any]:
    """bench.json's record of how this bench was run."""
    return {
        "warmup_ms": timing.warmup_ms,
        "min_duration_s": timing.min_duration_s,
        "min_iters": timing.min_iters,
        "repeats": repeats,
        "threads": threads,
        "batches": batches,
        "backends": backends,
    }


def write_merged(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Write `doc` to `path` with the rows of the bench.json there that this bench did not measure again."""
    merged, kept = merge(read_previous(path), doc)
    if kept:
        console.print(f"bench: kept {kept} earlier rows of {path} that this bench did not measure again")
    write_json(path, merged)
    return merged


def bench_stage(
    recipe: Recipe,
    run: RunDir,
    batches: list[int] | None = None,
    backends: list[str] | None = None,
    threads: int | None = None,
    trace: bool | None = None,
    repeats: int | None = None,
    min_duration_s: float | None = None,
) -> dict[str, Any]:
    """Bench dense against pruned; write bench.json (and bench_trace.json with trace); record stage 'bench'.
    Arguments left at None take the recipe's bench section (threads: bench, then run threads, then all cores)."""
    cfg = recipe.bench
    batches = list(batches or cfg.batches)
    backends = list(backends or cfg.backends)
    bad = [b for b in backends if b not in BACKENDS]
    if bad or any(b < 1 for b in batches):
        raise UsageError(
            f"bench: backends must be among {', '.join(BACKENDS)} and batches positive; got {bad or batches}"
        )
    threads = threads or cfg.threads or recipe.run.threads or os.cpu_count() or 1
    trace = cfg.trace if trace is None else trace
    repeats = repeats or cfg.repeats
    duration = cfg.min_duration_s if min_duration_s is None else min_duration_s
    timing = TimingConfig(cfg.warmup_ms, duration, cfg.min_iters, trace)
    shape = recipe_input_shape(recipe)

    which = {"dense": "dense", "pruned": pruned_name(run)}
    loaded = {m: resolve_model(recipe, run, w) for m, w in which.items()}
    models = {m: v[0] for m, v in loaded.items()}
    for m, (model, info, source) in loaded.items():
        require_finite_weights(model, f"{m} ({info.arch}, {source.name})")  # a NaN model's timing means nothing
    macs = {m: count_model(models[m], shape).macs for m in MODELS}
    plan = Planner(recipe, run, threads)
    if "torch" in backends:
        plan.torch(models, {m: str(v[2]) for m, v in loaded.items()})
    if "onnxruntime" in backends:
        plan.onnxruntime()
    if "tensorrt" in backends:
        plan.tensorrt()

    measurements, comparisons, traces = run_targets(
        plan, batches, shape, timing, repeats, macs["pruned"] / macs["dense"]
    )
    report_skips_and_failures(plan)

    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": str(run.path),
        "recipe": str(recipe.source),
        "model": recipe.model.name,
        "input_shape": list(shape),
        "models": {
            m: {"artifact": which[m], "source": str(loaded[m][2]), "sha256": sha256_file(loaded[m][2]), "macs": macs[m]}
            for m in MODELS
        },
        "settings": settings(timing, repeats, threads, batches, backends),
        "environment": environment(threads),
        "measurements": measurements,
        "comparisons": comparisons,
        "skipped": [s.to_dict() for s in plan.skips],
        "failed": plan.failures,
    }
    doc = stamp(doc)
    path = run.file("bench.json")
    doc = write_merged(path, doc)
    if trace:
        write_json(run.file("bench_trace.json"), {"schema": SCHEMA, "traces": traces})
    metrics = {
        f"{c['backend']}/{c['device']}/{c['precision']}/{c['variant']}/b{c['batch']}": round(c["ratio"]["median"], 4)
        for c in comparisons  # this invocation's, not rows kept from earlier ones
    }
    run.record(
        "bench",
        path,
        recipe.section_hash("model", "bench"),
        {"pruned_over_dense": metrics, "failed": len(plan.failures)},
    )
    return doc
