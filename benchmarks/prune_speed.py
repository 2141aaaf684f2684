"""Wall time of `cpli` pruning to 50% MACs, split into capture, Gram and solve, with peak memory, per model.

Rows (goals on the 2-core CPU in brackets): vgg16_cifar, scope blocks, 5,000 CIFAR-10 JPEG training images x 10
positions (90 s); torchvision resnet18 and mobilenet_v2 at 32x32, scope all, 1,000 images (60 s each);
efficientnet_b0 at 64x64, 500 images (120 s); convnext_tiny at 64x64, 256 images (120 s); resnet50 at 224x224,
256 images (15 min, 8 GiB); resnet18 at 64x64 with 64 images x 4 positions (60 s). Weights are seeded random
(BatchNorm statistics randomised) and, but for VGG-16, images are seeded noise: the time does not depend on what
the weights learned. Each row runs in its own process, so its peak resident memory is its own; one run per row
by default (the big rows take minutes), --repeats N gives medians.

Solve is everything after the Gram sums: feature importance, the objective's weight Gram, the LASSO selection,
the refit and the surgery. The LASSO share (the selection alone, the part a Python loop made 88% of a resnet18
prune) must stay under 5% in every row and under 10% on resnet18 at 64 images; the table shows both shares.

    .venv/bin/python benchmarks/prune_speed.py [--rows vgg16 resnet18 ...] [--repeats 1] [--threads 2]
                                               [--device cpu|cuda] [--name prune_speed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
from results_io import record  # also puts the repository on sys.path


@dataclass(frozen=True)
class Row:
    name: str
    model: str  # vgg16_cifar (cplitool's zoo) or a torchvision constructor
    size: int  # input side
    scope: str
    images: int
    positions: int
    goal_s: float
    goal_mib: float | None = None
    lasso_goal: float = 0.05  # the LASSO's share of the total


ROWS = {
    r.name: r
    for r in [
        Row("vgg16", "vgg16_cifar", 32, "blocks", 5000, 10, 90),
        Row("resnet18", "resnet18", 32, "all", 1000, 10, 60),
        Row("mobilenet_v2", "mobilenet_v2", 32, "all", 1000, 10, 60),
        Row("efficientnet_b0", "efficientnet_b0", 64, "all", 500, 10, 120),
        Row("convnext_tiny", "convnext_tiny", 64, "all", 256, 10, 120),
        Row("resnet50", "resnet50", 224, "all", 256, 10, 900, 8192),
        Row("resnet18_64img", "resnet18", 64, "all", 64, 4, 60, lasso_goal=0.10),
    ]
}
BATCH = 50


def build(row: Row) -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The row's model and its sampling batches."""
    torch.manual_seed(0)
    if row.model == "vgg16_cifar":
        from cplitool.toolchain.data import build_split, make_loader
        from cplitool.toolchain.models import create_model
        from cplitool.toolchain.recipe.sections import DataSection
        from tests.conftest import CIFAR_JPEG

        if not CIFAR_JPEG.is_dir():
            raise SystemExit(f"CIFAR-10 JPEG not found at {CIFAR_JPEG}")
        data = DataSection(
            name="imagefolder",
            root=str(CIFAR_JPEG),
            train_subset=row.images,
            mean=[0.491, 0.481, 0.444],
            std=[0.246, 0.244, 0.262],
        )
        loader = make_loader(build_split(data, "train", augment=False, seed=0), BATCH, shuffle=False)
        return create_model("vgg16_cifar", 10).eval(), list(loader)
    import torchvision

    from tests.toolchain.prune.nets import randomise_bn

    model = randomise_bn(getattr(torchvision.models, row.model)(num_classes=10)).eval()
    gen = torch.Generator().manual_seed(1)
    batches = []
    for start in range(0, row.images, BATCH):
        n = min(BATCH, row.images - start)
        batches.append(
            (torch.randn(n, 3, row.size, row.size, generator=gen), torch.randint(0, 10, (n,), generator=gen))
        )
    return model, batches


def run_row(row: Row, device: str) -> dict[str, Any]:
    """One prune of the row, timed by phase (in this process)."""
    import cplitool

    model, batches = build(row)
    start = time.perf_counter()
    _, report = cplitool.prune(
        model,
        batches,
        macs_keep=0.5,
        method="cpli",
        scope=row.scope,
        device=device,
        num_images=row.images,
        positions=row.positions,
        batch_size=BATCH,
    )
    total = time.perf_counter() - start
    return {"total": total, **report.seconds, "macs_keep": report.macs_keep, **report.peak_memory_mib}


def child(row: Row, threads: int, device: str) -> dict[str, Any]:
    """run_row in a fresh process: its peak resident memory is this row's alone."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", row.name, "--threads", str(threads), "--device", device],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"row {row.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_rate(device: str, side: int = 4096, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate (GFLOP/s, median of `repeats` products of two side x side
    matrices): the yardstick for the Gram phase's arithmetic bound (its float32 products are such matmuls)."""
    a = torch.randn(side, side, device=device)
    times = []
    for _ in range(repeats + 1):  # the first warms up
        start = time.perf_counter()
        (a @ a).sum().item()
        times.append(time.perf_counter() - start)
    return 2 * side**3 / statistics.median(times[1:]) / 1e9


def median_row(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def table_lines(rows: list[tuple[Row, dict[str, float], int]], device: str, threads: int) -> list[str]:
    lines = [
        f"cpli to 50% MACs on {device}, {threads} threads; seconds are medians of the runs shown; peak = the row's "
        "process's peak resident memory (MiB); load = reading the LASSO's compiled loops, once per process before "
        "the first group (in the total, in no phase).",
        "",
        "| row | input | scope | images x positions | runs | total s | capture | Gram | solve | of which LASSO "
        "| of which refit | load | solve share | LASSO share | peak MiB | goal | met: time (and memory) "
        "| met: LASSO share |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for row, m, runs in rows:
        share, lasso = m["solve"] / m["total"], m["lasso"] / m["total"]
        met = m["total"] <= row.goal_s and (row.goal_mib is None or m["process_rss"] <= row.goal_mib)
        goal = f"<= {row.goal_s:.0f} s" + (f", <= {row.goal_mib / 1024:.0f} GiB" if row.goal_mib else "")
        lines.append(
            f"| {row.name} | {row.model} {row.size}x{row.size} | {row.scope} | {row.images} x {row.positions} | "
            f"{runs} | {m['total']:.1f} | {m['capture']:.1f} | {m['gram']:.1f} | {m['solve']:.1f} | {m['lasso']:.2f} | "
            f"{m['refit']:.1f} | {m.get('load', 0.0):.2f} | {share:.1%} | {lasso:.1%} | {m['process_rss']:,.0f} | {goal} | {'yes' if met else 'NO'} | "
            f"{'yes' if lasso <= row.lasso_goal else 'NO'} (<= {row.lasso_goal:.0%}) |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--name", default="prune_speed")
    ap.add_argument("--child", choices=list(ROWS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_row(ROWS[args.child], args.device)))
        return
    load_before = os.getloadavg()
    rate = matmul_rate(args.device)
    measured = []
    for name in args.rows:
        runs = [child(ROWS[name], args.threads, args.device) for _ in range(args.repeats)]
        measured.append((ROWS[name], median_row(runs), len(runs)))
        print(name, measured[-1][1], flush=True)
    load_after = os.getloadavg()
    table = [
        *table_lines(measured, args.device, args.threads),
        "",
        f"Load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}: on a busy machine every "
        "phase stretches; the goals are for a quiet one.",
        f"float32 matmul rate before the rows (4096x4096, median of 5): {rate:.0f} GFLOP/s.",
    ]
    print("\n".join(table))
    data = {
        "args": vars(args),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "float32_matmul_gflops": rate,
        "rows": [{"row": r.name, **m, "runs": n} for r, m, n in measured],
    }
    record(args.name, f"CPLI pruning speed ({args.device})", table, data, args.threads)


if __name__ == "__main__":
    main()
