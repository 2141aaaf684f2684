"""The dense training loop on CIFAR-10 JPEG (resnet20): images/s, and how much of a step is data loading.

Each repeat runs, back to back, (a) the loader alone for `--steps` batches (uint8 cache -> pad-crop, flip,
normalise) and (b) `--steps` full training steps through cplitool.toolchain.train.loop.train_one_epoch, which
measures the time spent waiting for the loader. Reported: medians over `--repeats` of training images/s,
the loader's share of step time, and how many times faster the loader alone is than training. Loading is
not the bottleneck when its share is small and the loader alone runs many times faster than training.

    .venv/bin/python benchmarks/train_cifar_loop.py [--root ../shared/data/cifar10-jpeg] [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_io import REPO, record

from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import set_epoch
from cplitool.toolchain.models import create_model
from cplitool.toolchain.recipe.sections import DataSection, TrainSection
from cplitool.toolchain.train.fit import cross_entropy
from cplitool.toolchain.train.loop import train_one_epoch
from cplitool.toolchain.train.optim import build_optimizer, build_scheduler


def loader_only(loader: torch.utils.data.DataLoader, steps: int) -> float:  # type: ignore[type-arg]
    """Seconds to draw `steps` batches."""
    start = time.perf_counter()
    for step, _batch in enumerate(loader):
        if step + 1 >= steps:
            break
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if not Path(args.root).is_dir():
        sys.exit(f"CIFAR-10 JPEG folder not found at {args.root} (pass --root)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = DataSection(name="imagefolder", root=args.root, batch_size=args.batch)
    start = time.perf_counter()
    data = build_split(cfg, "train", augment=True, seed=0)  # decodes once, then loads the uint8 cache
    prepare_s = time.perf_counter() - start
    loader = make_loader(data, args.batch, shuffle=True, seed=0, drop_last=True)
    model = create_model("resnet20", data.num_classes)
    train_cfg = TrainSection(epochs=1, lr=0.1, max_steps=args.steps)
    optimizer = build_optimizer(model, train_cfg)
    scheduler = build_scheduler(optimizer, train_cfg, args.steps)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    device = torch.device("cpu")

    rows = []
    for repeat in range(args.repeats + 1):  # repeat 0 (5 steps) warms up allocator and kernels; not reported
        steps = args.steps if repeat else min(5, args.steps)
        set_epoch(loader, repeat, seed=0)
        load_s = loader_only(loader, steps)
        set_epoch(loader, repeat, seed=0)
        stats = train_one_epoch(
            model, loader, cross_entropy(0.0), optimizer, scheduler, scaler, device,
            amp=False, channels_last=False, max_steps=steps, label=f"repeat {repeat}",
        )  # fmt: skip
        if repeat:
            rows.append(
                {
                    "train_images_per_s": stats.images_per_s,
                    "data_share": stats.data_seconds / stats.seconds,
                    "loader_images_per_s": args.steps * args.batch / load_s,
                    "step_ms": 1e3 * stats.seconds / args.steps,
                    "data_ms_per_step": 1e3 * stats.data_seconds / args.steps,
                    "load_average": os.getloadavg()[0],
                }
            )
            print(f"repeat {repeat}: " + ", ".join(f"{k} {v:,.3f}" for k, v in rows[-1].items()), flush=True)

    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    headroom = med["loader_images_per_s"] / med["train_images_per_s"]

    def cells(key: str, fmt: str, scale: float = 1.0, unit: str = "") -> str:
        """`| median | every run |` for one metric."""
        runs = ", ".join(format(scale * r[key], fmt) + unit for r in rows)
        return f"| {format(scale * med[key], fmt)}{unit} | {runs} |"

    table = [
        f"resnet20, batch {args.batch}, {args.steps} steps x {args.repeats} repeats (after 5 warm-up steps), "
        f"{args.threads} threads; data prepared in {prepare_s:.1f} s (decode cache)",
        "",
        "| metric | median | runs |",
        "|---|---:|---|",
        "| training images/s " + cells("train_images_per_s", ",.0f"),
        "| step time (ms) " + cells("step_ms", ",.1f"),
        "| waiting for data per step (ms) " + cells("data_ms_per_step", ",.2f"),
        "| share of step time loading data " + cells("data_share", ".1f", 100, "%"),
        "| loader alone images/s " + cells("loader_images_per_s", ",.0f"),
        f"| loader alone / training speed | {headroom:,.1f}x | |",
        "| load average (1 min) " + cells("load_average", ".2f"),
    ]
    print("\n".join(table))
    data_out = {
        "model": "resnet20",
        "batch": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "prepare_seconds": prepare_s,
        "median": med,
        "loader_speedup_over_training": headroom,
        "runs": rows,
    }
    path = record("train_cifar_loop", "CIFAR-10 JPEG training loop on CPU (resnet20)", table, data_out, args.threads)
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
