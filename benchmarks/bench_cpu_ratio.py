"""ONNX Runtime CPU: pruned/dense latency ratio of vgg16_cifar pruned to 50% of MACs, and the run-to-run
coefficient of variation of the reported medians.

Weights are random (latency does not depend on them); pruning is cplitool's own (l1 on synthetic inputs)
when available. Each run is what `cplitool bench` does for one batch: dense and pruned interleaved over
`--repeats` rounds; the run reports each model's median latency and the median per-round ratio. `--runs`
such runs give the run-to-run spread. Goals: ratio <= 0.575 and within 15% of the MACs ratio; CV <= 3%.

    .venv/bin/python benchmarks/bench_cpu_ratio.py [--runs 5] [--batch 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pruned_models import pruned_pair
from results_io import record

from cplitool.deploy.bench.compare import interleaved
from cplitool.deploy.bench.timing import TimingConfig
from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
from cplitool.toolchain.models import input_shape


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vgg16_cifar")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-duration", type=float, default=3.0)
    ap.add_argument("--min-iters", type=int, default=10)
    ap.add_argument("--warmup-ms", type=float, default=200.0)
    args = ap.parse_args()

    pair = pruned_pair(args.arch, 0.5)
    shape = input_shape(args.arch)
    load_before = os.getloadavg()
    cfg = TimingConfig(args.warmup_ms, args.min_duration, args.min_iters)
    x = np.random.default_rng(0).standard_normal((args.batch, *shape), dtype=np.float32)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {m: Path(tmp) / f"{m}.onnx" for m in ("dense", "pruned")}
        export_onnx(pair.dense, shape, files["dense"], label="dense")
        export_onnx(pair.pruned, shape, files["pruned"], label="pruned")
        for i in range(args.runs):
            with (
                OnnxRuntimeRunner(files["dense"], "cpu", args.threads) as d,
                OnnxRuntimeRunner(files["pruned"], "cpu", args.threads) as p,
            ):
                c = interleaved({"dense": d, "pruned": p}, {"dense": x, "pruned": x}, cfg, args.repeats)
            assert c.ratio is not None
            run = {
                "dense_median_ms": c.measurements["dense"].primary.median,
                "pruned_median_ms": c.measurements["pruned"].primary.median,
                "ratio": c.ratio.median,
                "ratio_rounds": c.ratio.rounds,
                "iterations": c.measurements["dense"].samples.iterations,
                "load_average": os.getloadavg()[0],
            }
            runs.append(run)
            print(
                f"run {i + 1}/{args.runs}: dense {run['dense_median_ms']:.2f} ms, pruned {run['pruned_median_ms']:.2f} ms, ratio {run['ratio']:.4f}, load {run['load_average']:.2f}",
                flush=True,
            )
    ratios = [r["ratio"] for r in runs]
    summary = {
        "pruning": pair.how,
        "macs_dense": pair.macs_dense,
        "macs_pruned": pair.macs_pruned,
        "macs_ratio": pair.macs_ratio,
        "ratio_median_of_runs": statistics.median(ratios),
        "ratio_vs_macs_ratio": statistics.median(ratios) / pair.macs_ratio,
        "cv_ratio": cv(ratios),
        "cv_dense_median": cv([r["dense_median_ms"] for r in runs]),
        "cv_pruned_median": cv([r["pruned_median_ms"] for r in runs]),
        "load_average_before": load_before,
        "goal": "ratio <= 0.575 and within 15% of the MACs ratio; run-to-run CV of the reported median <= 3%",
    }
    table = [
        "| run | dense median (ms) | pruned median (ms) | pruned/dense | load (1 min) |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {i + 1} | {r['dense_median_ms']:.2f} | {r['pruned_median_ms']:.2f} | {r['ratio']:.4f} | {r['load_average']:.2f} |"
            for i, r in enumerate(runs)
        ],
        "",
        f"Pruning: {pair.how}; MACs {pair.macs_dense / 1e6:.1f} M -> {pair.macs_pruned / 1e6:.1f} M (ratio {pair.macs_ratio:.4f}).  ",
        f"Batch {args.batch}, {args.threads} ONNX Runtime thread(s), {args.repeats} interleaved rounds per run, "
        f">= {args.min_duration} s and >= {args.min_iters} iterations per model per run, warm-up {args.warmup_ms} ms per round.  ",
        f"Median pruned/dense ratio over runs: **{summary['ratio_median_of_runs']:.4f}** "
        f"({summary['ratio_vs_macs_ratio']:.3f} x the MACs ratio).  ",
        f"Run-to-run CV: ratio {100 * summary['cv_ratio']:.2f}%, dense median {100 * summary['cv_dense_median']:.2f}%, "
        f"pruned median {100 * summary['cv_pruned_median']:.2f}%. Load average before: {[round(v, 2) for v in load_before]}.",
    ]
    name = f"cpu_ratio_{args.arch}_b{args.batch}_t{args.threads}"
    path = record(
        name,
        f"ONNX Runtime CPU pruned/dense latency: {args.arch}, batch {args.batch}",
        table,
        {"args": vars(args), "summary": summary, "runs": runs},
        args.threads,
    )
    print("\n".join(table))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
