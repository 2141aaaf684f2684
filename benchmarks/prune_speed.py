"""Wall time of `cpli` on vgg16_cifar to 50% MACs, split into feature capture, Gram building and solving.

Default: CP's sampling (5000 CIFAR-10 JPEG training images x 10 positions), random-init weights (seeded;
the timing does not depend on what the weights learned). Goal on the 2-core CPU: under 5 minutes.

    .venv/bin/python benchmarks/prune_speed.py [--images 5000] [--positions 10] [--threads 2] [--width 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from results_io import record  # also puts the repository on sys.path

from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import DataSection, PruneSection
from tests.conftest import CIFAR_JPEG


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--positions", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0, help="vgg16_cifar width multiplier")
    ap.add_argument("--macs-keep", type=float, default=0.5)
    ap.add_argument("--name", default="prune_speed")
    args = ap.parse_args()
    if not CIFAR_JPEG.is_dir():
        raise SystemExit(f"CIFAR-10 JPEG not found at {CIFAR_JPEG}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = DataSection(
        name="imagefolder",
        root=str(CIFAR_JPEG),
        train_subset=args.images,
        mean=[0.491, 0.481, 0.444],
        std=[0.246, 0.244, 0.262],
    )
    split = build_split(data, "train", augment=False, seed=0)
    loader = make_loader(split, args.batch, shuffle=False)
    model = create_model("vgg16_cifar", 10, width=args.width).eval()
    cfg = PruneSection(method="cpli", macs_keep=args.macs_keep, num_images=args.images, positions=args.positions)
    load_before = os.getloadavg()
    start = time.perf_counter()
    plan = make_plan(model, (3, 32, 32), cfg)
    planned = time.perf_counter()
    result = prune_model(model, plan, cfg, loader, torch.device("cpu"), seed=0)
    total = time.perf_counter() - start
    load_after = os.getloadavg()
    rows = [
        ("plan (graph, MACs search)", planned - start),
        ("feature capture (forward/backward)", result.capture_s),
        ("Gram building", result.gram_s),
        ("solve (look-ahead, LASSO, refit, surgery)", result.solve_s),
        ("total wall time", total),
    ]
    table = [
        f"vgg16_cifar (width {args.width}), cpli to {args.macs_keep:.0%} MACs (plan: {plan.macs_keep:.3f}), "
        f"{args.images} images x {args.positions} positions, batch {args.batch}, {args.threads} threads, "
        f"one run (a repeat costs as much again); load average before {load_before[0]:.2f}, after {load_after[0]:.2f}",
        "",
        "| part | seconds | share |",
        "|---|---:|---:|",
        *[f"| {name} | {sec:,.1f} | {100 * sec / total:.0f}% |" for name, sec in rows],
        "",
        f"Goal: under 300 s. Measured: {total:,.1f} s ({'met' if total < 300 else 'NOT met'}) under the load above.",
    ]
    print("\n".join(table))
    data_out = {
        "args": vars(args),
        "seconds": dict(rows),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "stages": [dataclasses.asdict(s) | {"kept_channels": len(s.kept_channels)} for s in result.stages],
    }
    record(args.name, "CPLI pruning speed (vgg16_cifar, CPU)", table, data_out, args.threads)


if __name__ == "__main__":
    main()
