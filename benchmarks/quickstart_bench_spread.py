"""How stable is the quickstart's own latency table? The spread of its pruned/dense ratio, per settings.

Times the quickstart run's two ONNX files (ONNX Runtime CPU, FP32, the recipe's 2 threads, batches 1 and
64) exactly as its bench stage does, through `cplitool bench`'s file mode so the run's bench.json is left
alone, several times for each candidate (rounds, seconds) setting. Per bench it records the ratio's median
and its p10-p90 width over the paired rounds relative to the median (the table prints "unstable" above
10%); the table gives the median and worst width over the benches. Needs `cplitool run
recipes/quickstart.toml` first.

    .venv/bin/python benchmarks/quickstart_bench_spread.py [--run runs/quickstart] [--benches 3]
        [--settings 3:0.5 5:1.0 11:2.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_io import record

from cplitool.deploy.bench.files import bench_files
from cplitool.deploy.bench.spread import ratio_interval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/quickstart"))
    ap.add_argument("--benches", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", nargs="+", default=["3:0.5", "5:1.0", "11:2.2"], help="rounds:seconds")
    args = ap.parse_args()
    files = [str(args.run / "onnx" / f"{m}.fp32.onnx") for m in ("dense", "pruned")]
    if not all(Path(f).is_file() for f in files):
        sys.exit(f"no ONNX files in {args.run}/onnx: run `cplitool run recipes/quickstart.toml` first")
    rows, data = [], []
    for setting in args.settings:
        rounds, seconds = int(setting.split(":")[0]), float(setting.split(":")[1])
        widths: dict[int, list[float]] = {1: [], 64: []}
        medians: dict[int, list[float]] = {1: [], 64: []}
        started = time.perf_counter()
        for i in range(args.benches):
            doc = bench_files(files, [1, 64], args.threads, rounds, seconds)
            for c in doc["comparisons"]:
                iv = ratio_interval(c)
                widths[c["batch"]].append(iv.width)
                medians[c["batch"]].append(iv.median)
                print(f"{setting} bench {i + 1}: b{c['batch']} ratio {iv.text()} width {iv.width:.1%}", flush=True)
        took = (time.perf_counter() - started) / args.benches
        for b in (1, 64):
            rows.append(
                f"| {rounds} | {seconds:g} | {b} | {statistics.median(medians[b]):.3f} "
                f"({min(medians[b]):.3f}-{max(medians[b]):.3f}) | {statistics.median(widths[b]):.1%} "
                f"| {max(widths[b]):.1%} | {took:.1f} |"
            )
        data.append(
            {"rounds": rounds, "seconds": seconds, "ratio_medians": medians, "widths": widths, "s_per_bench": took}
        )
    table = [
        f"{args.benches} benches per setting of {files[0]} vs {files[1]}; width: (p90 - p10) / median of the "
        'paired per-round ratios, the table\'s "unstable" above 10%.',
        "",
        "| rounds | seconds | batch | ratio median over benches (min-max) | median width | worst width | s per bench |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    print("\n".join(table))
    record(
        "quickstart_bench_spread",
        "Quickstart bench: spread of the pruned/dense ratio",
        table,
        {"settings": data},
        args.threads,
    )


if __name__ == "__main__":
    main()
