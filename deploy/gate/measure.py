"""Time the gate's pair as `cplitool bench` times a run: ONNX Runtime CPU, dense and pruned interleaved.

The result is a bench document (schema cplitool-bench/1), so `cplitool regress` reads it like any bench.json.
Paths in it are as given (the gate passes paths relative to the working directory), never made absolute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cplitool.deploy.bench.compare import interleaved
from cplitool.deploy.bench.env import environment
from cplitool.deploy.bench.timing import TimingConfig
from cplitool.deploy.gate.pair import Pair
from cplitool.deploy.regress import SCHEMA
from cplitool.deploy.runners.base import Runner
from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner

MODELS = ("dense", "pruned")


@dataclass(frozen=True)
class GateTiming:
    """How the pair is timed. The duration is per model over all rounds, so a run takes about twice it."""

    batch: int = 16
    threads: int = 1
    repeats: int = 10
    duration_s: float = 12.0
    warmup_ms: float = 150.0
    min_iters: int = 10


def measure_pair(pair: Pair, timing: GateTiming) -> dict[str, Any]:
    """One interleaved measurement of the pair: a bench document with one comparison row."""
    cfg = TimingConfig(timing.warmup_ms, timing.duration_s, timing.min_iters)
    x = np.random.default_rng(timing.batch).standard_normal((timing.batch, *pair.input_shape), dtype=np.float32)
    with (
        OnnxRuntimeRunner(pair.file("dense"), "cpu", timing.threads) as dense,
        OnnxRuntimeRunner(pair.file("pruned"), "cpu", timing.threads) as pruned,
    ):
        runners: dict[str, Runner] = {"dense": dense, "pruned": pruned}
        result = interleaved(runners, {m: x for m in MODELS}, cfg, timing.repeats, cpu_clock=time.process_time)
    key = {
        "backend": "onnxruntime",
        "device": "cpu",
        "precision": "fp32",
        "variant": "cpu",
        "batch": timing.batch,
        "threads": timing.threads,
    }
    sources = {m: str(pair.file(m)) for m in MODELS}
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": pair.spec.arch,
        "input_shape": list(pair.input_shape),
        "models": {m: {"artifact": f"gate {m}", "source": sources[m], "macs": pair.macs[m]} for m in MODELS},
        "settings": {
            "warmup_ms": timing.warmup_ms,
            "min_duration_s": timing.duration_s,
            "min_iters": timing.min_iters,
            "repeats": timing.repeats,
            "threads": timing.threads,
            "batches": [timing.batch],
            "backends": ["onnxruntime"],
        },
        "environment": environment(timing.threads),
        "measurements": result.measurement_rows(key, sources),
        "comparisons": [result.comparison_row(key, pair.macs_ratio)],
        "skipped": [],
    }
