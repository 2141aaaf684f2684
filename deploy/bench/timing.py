"""The measurement loop, after trtexec: time-based warm-up, then at least `min_duration_s` and at least
`min_iters` timed iterations. Host latency is timed around every call; runners whose `times_device` is
true (GPU runners) return enqueue time and CUDA-event H2D, compute and D2H times from `infer_timed`.
Given a CPU clock (the latency gate passes time.process_time), the process's CPU time per call is recorded
too: on one thread it is the call's latency on an idle core, unmoved by neighbours taking turns on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cplitool.deploy.bench.stats import Stats, summarize, throughput
from cplitool.deploy.runners.base import Runner

DEVICE_METRICS = ("enqueue", "h2d", "compute", "d2h")
METRICS = ("latency", "cpu", *DEVICE_METRICS)
ENQUEUE_BOUND = 0.8  # median enqueue above this fraction of median GPU compute: the host cannot keep up
UNSTABLE_CV = 0.01  # coefficient of variation of the primary metric above 1%: numbers not to be trusted


@dataclass(frozen=True)
class TimingConfig:
    warmup_ms: float = 200.0
    min_duration_s: float = 3.0
    min_iters: int = 10
    trace: bool = False


@dataclass
class Samples:
    """Raw per-iteration timings in ms (device metrics empty when the runner does not report them)."""

    values: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    starts_ms: list[float] = field(default_factory=list)
    warmup_iters: int = 0
    wall_s: float = 0.0

    @property
    def iterations(self) -> int:
        return len(self.values["latency"])

    def extend(self, other: Samples) -> None:
        offset = self.wall_s * 1e3
        for m in METRICS:
            self.values[m] += other.values[m]
        self.starts_ms += [offset + s for s in other.starts_ms]
        self.warmup_iters += other.warmup_iters
        self.wall_s += other.wall_s


@dataclass
class Measurement:
    """Statistics of one runner at one batch size, the throughput and trtexec's warnings."""

    batch: int
    samples: Samples
    stats: dict[str, Stats]
    throughput: float
    warnings: list[str]

    @property
    def primary_metric(self) -> str:
        """GPU compute time where the runner measures it (trtexec's headline), else CPU time where it was
        recorded, else host latency."""
        return primary_metric(self.stats)

    @property
    def primary(self) -> Stats:
        return self.stats[self.primary_metric]

    def to_dict(self, trace: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "batch": self.batch,
            "warmup_iterations": self.samples.warmup_iters,
            "iterations": self.samples.iterations,
            "total_host_walltime_s": self.samples.wall_s,
            "throughput_ips": self.throughput,
            "primary_metric": self.primary_metric,
            "stats_ms": {m: s.to_dict() for m, s in self.stats.items()},
            "warnings": self.warnings,
        }
        if "compute" in self.stats:
            d["total_gpu_compute_s"] = sum(self.samples.values["compute"]) / 1e3
        if trace:
            d["trace"] = trace_rows(self.samples)
        return d


def trace_rows(samples: Samples) -> list[dict[str, float]]:
    """One row per timed iteration: start offset and every measured metric, in ms."""
    measured = [m for m in METRICS if samples.values[m]]
    return [
        {"start_ms": samples.starts_ms[i], **{f"{m}_ms": samples.values[m][i] for m in measured}}
        for i in range(samples.iterations)
    ]


def primary_metric(measured: Any) -> str:
    """The headline among the measured metrics (a dict keyed by metric, or a list of metric names)."""
    return next(m for m in ("compute", "cpu", "latency") if m in measured)


def warnings_for(stats: dict[str, Stats]) -> list[str]:
    """trtexec's three warnings: enqueue-bound, transfer-bound, unstable."""
    out = []
    compute = stats.get("compute")
    if compute is not None:
        enqueue = stats["enqueue"].median
        if enqueue > ENQUEUE_BOUND * compute.median:
            out.append(
                f"enqueue-bound: median enqueue {enqueue:.3f} ms > {ENQUEUE_BOUND} x median GPU compute "
                f"{compute.median:.3f} ms; the host launches too slowly (use CUDA graphs)"
            )
        for m, label in (("h2d", "H2D"), ("d2h", "D2H")):
            if stats[m].median >= compute.median:
                out.append(
                    f"transfer-bound: median {label} {stats[m].median:.3f} ms >= median GPU compute "
                    f"{compute.median:.3f} ms"
                )
    metric = primary_metric(stats)
    primary = stats[metric]
    name = {"compute": "GPU compute", "cpu": "CPU time", "latency": "host latency"}[metric]
    if primary.cv > UNSTABLE_CV:
        out.append(f"unstable: {name} coefficient of variation {100 * primary.cv:.1f}% > {100 * UNSTABLE_CV:.0f}%")
    return out


def measurement(batch: int, samples: Samples) -> Measurement:
    stats = {m: summarize(v) for m, v in samples.values.items() if v}
    return Measurement(
        batch, samples, stats, throughput(batch, samples.iterations, samples.wall_s), warnings_for(stats)
    )


def run_samples(
    runner: Runner,
    x: np.ndarray,
    cfg: TimingConfig,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] | None = None,
) -> Samples:
    """Warm up for cfg.warmup_ms, then time iterations until both the duration and count minimums are met
    (on `clock`, wall time); with `cpu_clock`, also record each call's CPU time."""
    timed = runner.infer_timed if runner.times_device else None
    step: Callable[[np.ndarray], Any] = timed or runner.infer
    samples = Samples()
    warm_end = clock() + cfg.warmup_ms / 1e3
    while clock() < warm_end:
        step(x)
        samples.warmup_iters += 1
    values = samples.values
    lat, starts = values["latency"], samples.starts_ms
    device = [values[m] for m in DEVICE_METRICS] if timed else None
    cpu = values["cpu"]
    begin = clock()
    now = begin
    while len(lat) < cfg.min_iters or now - begin < cfg.min_duration_s:
        c0 = cpu_clock() if cpu_clock else 0.0
        t0 = clock()
        result = step(x)
        now = clock()
        if cpu_clock:
            cpu.append((cpu_clock() - c0) * 1e3)
        lat.append((now - t0) * 1e3)
        starts.append((t0 - begin) * 1e3)
        if device is not None:
            t = result[1]
            for dst, v in zip(device, (t.enqueue_ms, t.h2d_ms, t.compute_ms, t.d2h_ms), strict=True):
                dst.append(v)
    samples.wall_s = now - begin
    return samples


def measure(runner: Runner, x: np.ndarray, cfg: TimingConfig) -> Measurement:
    return measurement(int(x.shape[0]), run_samples(runner, x, cfg))
