"""Does CPLI beat CP? Paired ablation on a dense CIFAR-10 model, full 10,000-image test set.

Two dense models, each with a checkpoint in a foreign layout ({"state_dict": {"module.<key>": tensor}},
written by benchmarks/train_foreign_checkpoint.py): a user's own ResNet-20
(benchmarks/user_models/cifar_resnet.py, where feature importance is inert: every stage's consumer writes a
block output) and cplitool's vgg16_cifar at half width (--model vgg16_w0.5, a plain chain where it acts).
Every variant prunes the same stages to the same widths at each MACs target; a sampling seed picks both the
sampled training images and the positions, and every method sees the same images for a given seed.

Phases, per MACs target: (1) the paper's cells (random, l1, cp, cp+classification, cp+importance, cpli) and
the --every-seed options (default: cpli+gamma_search, the fix tried when cpli does not beat cp) with
--seeds seeds; (2) every option beyond the paper with the first seed; (3) the best option of phase 2
(highest top-1 before fine-tuning at the lowest target) with the remaining seeds; (4) one identical short
fine-tune (plain loop, fixed seed) of cp, cpli, the --every-seed options and the best option, every seed
(--tune-all: every cell of phases 1 and 3). l1 does not depend on the sampling seed: it is pruned once and paired with every seed's cp. Reported per cell: top-1 and
cross-entropy on the test set before fine-tuning, top-1 after, seconds per prune; per variant: paired
differences against cp with their mean and 95% t-interval over seeds; per stage, whether feature importance
acts (the share of outputs weighted eps, and how much of the selection it changes).

Each finished cell is cached in a JSON file (--cache), so an interrupted run resumes where it stopped:
    .venv/bin/python benchmarks/cpli_ablation.py                 # full run, hours on 2 shared cores
    .venv/bin/python benchmarks/cpli_ablation.py --quick         # tiny settings, minutes (tests use it)
    .venv/bin/python benchmarks/cpli_ablation.py --model vgg16_w0.5 --every-seed --tune-all
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "user_models"))

from results_io import REPO, RESULTS, locked_update, record
from seed_stats import interval
from short_finetune import sgd_steps

from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.prune.surgery import remove_channels
from cplitool.toolchain.recipe.sections import DataSection, PruneSection

BASE = {"method": "cpli"}
VARIANTS: dict[str, dict[str, Any]] = {
    "random": {"method": "random"},
    "l1": {"method": "l1"},
    "cp": {"method": "cp"},
    "cpli": BASE,
    "cp+classification": {**BASE, "use_importance": False},
    "cp+importance": {**BASE, "use_classification": False},
    "cpli+refit_cg": {**BASE, "refit_classification": True},
    "cpli+image_rows": {**BASE, "classification_rows": "image"},
    "cpli+fold_bn": {**BASE, "fold_bn": True},
    "cpli+gamma_rel=0.3": {**BASE, "gamma_rel": 0.3},
    "cpli+gamma_rel=3": {**BASE, "gamma_rel": 3.0},
    "cpli+lookahead=1.0": {**BASE, "lookahead_rows_fraction": 1.0},
    "cpli+ridge_search": {**BASE, "ridge_search": True},
    "cpli+gamma_search": {**BASE, "gamma_search": [0.0, 0.3, 1.0, 3.0]},  # gamma_rel per stage, held-out loss
}
PAPER = ["random", "l1", "cp", "cp+classification", "cp+importance", "cpli"]  # the rest are options beyond it
SEEDLESS = {"l1"}  # selections that read no sampled data: one prune serves every seed
# Variants that only change the look-ahead: identical to another variant when no stage's consumer outputs
# are pruned by a later stage (ResNet-20: every stage's consumer writes a residual block's output).
LOOKAHEAD_ONLY = {"cp+importance": "cp", "cp+classification": "cpli", "cpli+lookahead=1.0": "cpli"}
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
CHECKPOINTS = REPO / "benchmarks" / "checkpoints"
MODELS = {  # --model: (title, default checkpoint, default result name)
    "resnet20": ("ResNet-20 (benchmarks/user_models/cifar_resnet.py)", "resnet20_cifar10.pth", "cpli_ablation"),
    "vgg16_w0.5": ("VGG-16 at half width (vgg16_cifar, width 0.5)", "vgg16_w0.5_cifar10.pth", "cpli_vgg_ablation"),
}


@dataclasses.dataclass
class Settings:
    model: str
    root: Path
    checkpoint: Path
    targets: list[float]
    seeds: list[int]
    images: int
    positions: int
    round_to: int
    test_images: int  # 0: the whole test split
    finetune_epochs: float
    finetune_lr: float
    threads: int


def settings(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        model=args.model,
        root=Path(args.root),
        checkpoint=Path(args.checkpoint or CHECKPOINTS / MODELS[args.model][1]),
        targets=args.targets or ([0.5] if quick else [0.5, 0.3]),
        seeds=list(range(args.seeds or (2 if quick else 3))),
        images=args.images or (64 if quick else 2000),
        positions=args.positions,
        round_to=args.round_to,
        test_images=500 if quick else 0,
        finetune_epochs=args.finetune_epochs or (0.02 if quick else 1.0),
        finetune_lr=args.finetune_lr,
        threads=args.threads,
    )


def load_dense(model_name: str, path: Path) -> nn.Module:
    """The model from a {"state_dict": {"module.<key>": tensor}} checkpoint, loaded weights-only."""
    from cifar_resnet import ResNet20

    from cplitool.toolchain.models.vgg import vgg16_cifar

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    model = ResNet20(num_classes=10) if model_name == "resnet20" else vgg16_cifar(num_classes=10, width=0.5)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return model.eval()


def data_cfg(s: Settings) -> DataSection:
    return DataSection(name="imagefolder", root=str(s.root), val_split="test", mean=MEAN, std=STD, workers=0)


def sampled_batches(s: Settings, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`s.images` training images drawn with `seed`, unaugmented, in batches of 100."""
    cfg = dataclasses.replace(data_cfg(s), train_subset=s.images)
    return list(make_loader(build_split(cfg, "train", augment=False, seed=seed), 100, shuffle=False))


def test_metrics(model: nn.Module, loader: Any) -> dict[str, float]:
    """Top-1 (%) and mean cross-entropy on the test loader."""
    model.eval()
    correct = seen = 0
    loss = 0.0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    return {"top1": 100.0 * correct / seen, "ce": loss / seen, "images": seen}


_TRAIN: dict[str, Any] = {}


def finetune(model: nn.Module, s: Settings) -> float:
    """The same short fine-tune for every cell: plain cross-entropy, SGD (Nesterov, momentum 0.9, weight
    decay 5e-4), cosine from finetune_lr, batch 128, random crop and flip, seed 0. Returns its seconds."""
    if str(s.root) not in _TRAIN:  # decoded once per process
        _TRAIN[str(s.root)] = build_split(data_cfg(s), "train", augment=True, seed=0)
    loader = make_loader(_TRAIN[str(s.root)], 128, shuffle=True, seed=0)
    steps = max(1, round(s.finetune_epochs * len(loader)))
    return sgd_steps(model, loader, steps, s.finetune_lr, seed=0)


class Cells:
    """Finished cells by key, persisted after each one (atomic JSON write)."""

    def __init__(self, path: Path, signature: dict[str, Any]) -> None:
        self.path, self.signature = path, signature
        old = json.loads(path.read_text()) if path.exists() else {}
        self.cells: dict[str, Any] = old.get("cells", {}) if old.get("signature") == signature else {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.cells.get(key)

    def put(self, key: str, cell: dict[str, Any]) -> None:
        """Store `cell`, merged under a lock with what other processes on the same cache have stored since:
        their cells win over this process's copies, loaded earlier (a copy without its fine-tune must not
        overwrite the cell another process has fine-tuned since)."""

        def merged(old: dict[str, Any]) -> dict[str, Any]:
            stored = old.get("cells", {}) if old.get("signature") == self.signature else {}
            return {"signature": self.signature, "cells": {**self.cells, **stored, key: cell}}

        self.cells = locked_update(self.path, merged)["cells"]


def prune(s: Settings, dense: nn.Module, target: float, variant: str, seed: int) -> tuple[Any, Any, float]:
    """(PruneResult, plan, seconds) of one variant on a copy of the dense model. The refit is the paper's plain
    least squares (ridge_search off, as when the cached cells were made): the ablation is about selection."""
    options: dict[str, Any] = {"ridge_search": False, **VARIANTS[variant]}
    cfg = PruneSection(macs_keep=target, round_to=s.round_to, num_images=s.images, positions=s.positions, **options)
    model = copy.deepcopy(dense)
    plan = make_plan(model, (3, 32, 32), cfg)
    start = time.perf_counter()
    result = prune_model(model, plan, cfg, sampled_batches(s, seed), torch.device("cpu"), seed)
    return result, plan, time.perf_counter() - start


def run_cell(
    s: Settings, dense: nn.Module, target: float, variant: str, seed: int, tune: bool, test: Any, cache: Cells
) -> dict[str, Any]:
    key = f"{target}|{variant}|{seed}"
    cell = cache.get(key)
    if cell is not None and (not tune or "top1_after" in cell):
        return cell
    weights = _model_path(cache, key)
    if cell is None:
        result, plan, prune_s = prune(s, dense, target, variant, seed)
        before = test_metrics(result.model, test)
        cell = {
            "target": target,
            "variant": variant,
            "seed": seed,
            "macs_keep": plan.macs_keep,
            "top1_before": before["top1"],
            "ce_before": before["ce"],
            "prune_s": prune_s,
            "seconds": result.to_dict()["seconds"],
            "kept": [r.kept_channels for r in result.stages],
            "load_average": os.getloadavg()[0],
        }
        torch.save(result.model.state_dict(), weights)  # for the fine-tune phase
        cache.put(key, cell)
        print(f"{key}: top-1 {before['top1']:.2f}%  ce {before['ce']:.3f}  prune {prune_s:.0f} s", flush=True)
    if tune:
        if weights.exists():
            model = pruned_model(dense, s, cell, weights)
        else:  # a cache without its scratch weights (e.g. committed): pruning is deterministic, redo it
            redone = prune(s, dense, target, variant, seed)[0]
            if [r.kept_channels for r in redone.stages] != cell["kept"]:
                sys.exit(f"{key}: pruning again kept other channels than the cached cell; delete {cache.path}")
            model = redone.model
        cell["finetune_s"] = finetune(model, s)
        cell["top1_after"] = test_metrics(model, test)["top1"]
        cache.put(key, cell)
        print(f"{key}: after fine-tune {cell['top1_after']:.2f}%", flush=True)
    return cell


def pruned_model(dense: nn.Module, s: Settings, cell: dict[str, Any], weights: Path) -> nn.Module:
    """A cell's pruned model back from its kept channels (same plan, same surgery) and its saved weights."""
    model = copy.deepcopy(dense)
    plan = make_plan(model, (3, 32, 32), PruneSection(macs_keep=cell["target"], round_to=s.round_to))
    dg = graph(model, (3, 32, 32))
    for stage, kept in zip(plan.stages, cell["kept"], strict=True):
        remove_channels(dg, model.get_submodule(stage.producer), np.array(kept))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def _model_path(cache: Cells, key: str) -> Path:
    folder = cache.path.with_suffix(".models")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (key.replace("|", "_").replace("=", "") + ".pt")


def lookahead_inert(dense: nn.Module, s: Settings) -> bool:
    stages = make_plan(dense, (3, 32, 32), PruneSection(macs_keep=s.targets[0], round_to=s.round_to)).stages
    producers = {st.producer for st in stages}
    return not any(st.consumer in producers for st in stages)


def summarise(cells: list[dict[str, Any]], s: Settings, aliases: dict[str, str]) -> tuple[list[str], list[Any]]:
    by = {(c["target"], c["variant"], c["seed"]): c for c in cells}
    rows, summary = [], []
    header = (
        "| MACs target | variant | seeds | top-1 before FT | val CE before FT | Δ top-1 vs cp (95% CI) | Δ CE vs cp | "
        "top-1 after FT | Δ after FT vs cp (95% CI) | prune s |"
    )
    rows += [header, "|---:|---|---:|---:|---:|---|---:|---:|---|---:|"]
    for target in s.targets:
        for variant in VARIANTS:
            if variant in aliases:
                rows.append(
                    f"| {target:.0%} | {variant} | – | = {aliases[variant]} (identical: no look-ahead) | | | | | | |"
                )
                continue
            mine = [by[(target, variant, seed)] for seed in s.seeds if (target, variant, seed) in by]
            if not mine:
                continue
            pairs = [(c, by[(target, "cp", c["seed"])]) for c in mine if (target, "cp", c["seed"]) in by]
            d_top1 = interval([c["top1_before"] - b["top1_before"] for c, b in pairs])
            d_ce = statistics.fmean([c["ce_before"] - b["ce_before"] for c, b in pairs])
            tuned = [(c, b) for c, b in pairs if "top1_after" in c and "top1_after" in b]
            tuned_mine = [c["top1_after"] for c in mine if "top1_after" in c]
            after = statistics.fmean(tuned_mine) if tuned_mine else None
            partial = f" ({len(tuned_mine)} of {len(mine)} seeds)" if tuned_mine and len(tuned_mine) < len(mine) else ""
            d_after = interval([c["top1_after"] - b["top1_after"] for c, b in tuned]) if tuned else None
            entry = {
                "target": target,
                "variant": variant,
                "seeds": [c["seed"] for c in mine],
                "top1_before": statistics.fmean(c["top1_before"] for c in mine),
                "ce_before": statistics.fmean(c["ce_before"] for c in mine),
                "delta_top1_before": {"mean": d_top1[0], "half_width_95": d_top1[1]},
                "delta_ce_before": d_ce,
                "top1_after": after,
                "delta_top1_after": None if d_after is None else {"mean": d_after[0], "half_width_95": d_after[1]},
                "prune_s": statistics.median(c["prune_s"] for c in mine),
            }
            summary.append(entry)
            rows.append(
                f"| {target:.0%} | {variant} | {len(mine)} | {entry['top1_before']:.2f} | {entry['ce_before']:.3f} | "
                f"{'–' if variant == 'cp' else signed(*d_top1)} | {'–' if variant == 'cp' else f'{d_ce:+.3f}'} | "
                f"{'' if after is None else f'{after:.2f}{partial}'} | "
                f"{'' if d_after is None or variant == 'cp' else signed(*d_after)} | {entry['prune_s']:.0f} |"
            )
    return rows, summary


def versus_cpli(cells: list[dict[str, Any]], s: Settings) -> list[str]:
    """The options beyond the paper run on several seeds, paired by seed against cpli itself (the table above
    pairs every variant with cp): does the option improve on the paper's method?"""
    by = {(c["target"], c["variant"], c["seed"]): c for c in cells}
    rows = [
        "Options run on several seeds against cpli itself, paired by seed (mean ± 95% t half-width):",
        "",
        "| MACs target | variant | seeds | Δ top-1 before FT vs cpli | Δ top-1 after FT vs cpli |",
        "|---:|---|---:|---|---|",
    ]
    for target in s.targets:
        for variant in [v for v in VARIANTS if v.startswith("cpli+")]:
            pairs = [
                (by[(target, variant, seed)], by[(target, "cpli", seed)])
                for seed in s.seeds
                if (target, variant, seed) in by and (target, "cpli", seed) in by
            ]
            if len(pairs) < 2:
                continue
            before = [c["top1_before"] - b["top1_before"] for c, b in pairs]
            tuned = [c["top1_after"] - b["top1_after"] for c, b in pairs if "top1_after" in c and "top1_after" in b]
            after = f"{signed(*interval(tuned))} (n={len(tuned)})" if len(tuned) > 1 else ""
            rows.append(f"| {target:.0%} | {variant} | {len(pairs)} | {signed(*interval(before))} | {after} |")
    return rows


def signed(mean: float, half: float | None) -> str:
    """A paired difference: mean ± 95% t half-width (the mean alone for one seed)."""
    return f"{mean:+.2f}" + (f" ± {half:.2f}" if half is not None else "")


def overlap(a: list[int], b: list[int]) -> float:
    """Share of a's kept channels that b keeps too (both keep the same count)."""
    return len(set(a) & set(b)) / max(len(a), 1)


def importance_stats(dense: nn.Module, cells: list[dict[str, Any]], s: Settings) -> tuple[list[str], list[Any]]:
    """Does feature importance act? Per target and stage: the share of the consumer's outputs weighted eps (the
    outputs the next stage drops; 0 where the consumer writes no pruned channels), and how many of the kept
    channels importance changes: overlap of cp+importance with cp and of cpli with cp+classification, by seed."""
    by = {(c["target"], c["variant"], c["seed"]): c for c in cells}
    rows = [
        "Feature importance per stage: share of the consumer's outputs weighted eps, and overlap of the kept "
        "channels with importance on and off (mean over seeds; 100% = importance changed nothing).",
        "",
        "| MACs target | stage (producer -> consumer) | channels -> keep | outputs at eps | "
        "cp+importance vs cp | cpli vs cp+classification |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    stats = []
    for target in s.targets:
        stages = make_plan(dense, (3, 32, 32), PruneSection(macs_keep=target, round_to=s.round_to)).stages
        by_producer = {st.producer: st for st in stages}
        for i, st in enumerate(stages):
            nxt = by_producer.get(st.consumer)
            eps_share = 0.0 if nxt is None else 1 - nxt.keep / nxt.channels
            pairs = {}
            for on, off in (("cp+importance", "cp"), ("cpli", "cp+classification")):
                shares = [
                    overlap(by[(target, on, seed)]["kept"][i], by[(target, off, seed)]["kept"][i])
                    for seed in s.seeds
                    if (target, on, seed) in by and (target, off, seed) in by
                ]
                pairs[f"{on} vs {off}"] = statistics.fmean(shares) if shares else None
            stats.append({"target": target, "producer": st.producer, "consumer": st.consumer,
                          "channels": st.channels, "keep": st.keep, "eps_share": eps_share, "overlap": pairs})  # fmt: skip
            cols = " | ".join("" if v is None else f"{v:.0%}" for v in pairs.values())
            rows.append(
                f"| {target:.0%} | {st.producer} -> {st.consumer} | {st.channels} -> {st.keep} | {eps_share:.0%} | {cols} |"
            )
    return rows, stats


def best_variant(cells: list[dict[str, Any]], target: float, seed: int, exclude: set[str]) -> str | None:
    """Highest top-1 before fine-tuning at `target` with `seed` among the screened variants."""
    screened = [c for c in cells if c["target"] == target and c["seed"] == seed and c["variant"] not in exclude]
    return max(screened, key=lambda c: c["top1_before"])["variant"] if screened else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "cifar10-jpeg"))
    ap.add_argument("--model", choices=list(MODELS), default="resnet20", help="the dense model (default resnet20)")
    ap.add_argument(
        "--checkpoint", default="", help="its checkpoint (default benchmarks/checkpoints/<model>_cifar10.pth)"
    )
    ap.add_argument("--targets", type=float, nargs="+", help="MACs keep targets (default 0.5 0.3)")
    ap.add_argument("--seeds", type=int, help="sampling seeds for cp, cpli and the best variant (default 3)")
    ap.add_argument("--images", type=int, help="sampled training images per prune (default 2000)")
    ap.add_argument("--positions", type=int, default=10, help="sampled output positions per image")
    ap.add_argument("--round-to", type=int, default=2, help="prune.round_to (8 cannot reach 30%% MACs here)")
    ap.add_argument("--finetune-epochs", type=float, help="fine-tune length in epochs (default 1)")
    ap.add_argument("--finetune-lr", type=float, default=0.01)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="variants besides cp and cpli (default: all)")
    ap.add_argument(
        "--no-finetune", action="store_true", help="phases 1-3 only; a later run without it adds the fine-tunes"
    )
    ap.add_argument("--tune-all", action="store_true", help="phase 4 fine-tunes every paper cell too")
    ap.add_argument(
        "--tune-targets", type=float, nargs="+", help="phase 4 at these targets only (two processes, one cache)"
    )
    ap.add_argument(
        "--every-seed",
        nargs="*",
        choices=[v for v in VARIANTS if v not in PAPER],
        default=["cpli+gamma_search"],
        help="options run on every seed in phase 1 (default: cpli+gamma_search)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    ap.add_argument("--quick", action="store_true", help="tiny settings: one target, 2 seeds, 64 images, 500 tests")
    ap.add_argument("--name", default="", help="result name (default per model, e.g. cpli_ablation; <name>_quick)")
    ap.add_argument("--cache", default="", help="cell cache (default benchmarks/results/<name>.cells.json)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for <name>.json and <name>.md")
    args = ap.parse_args(argv)
    s = settings(args)
    title = MODELS[s.model][0]
    name = args.name or MODELS[s.model][2] + ("_quick" if args.quick else "")
    for path, what in ((s.root, "CIFAR-10 JPEG folder"), (s.checkpoint, "dense checkpoint")):
        if not path.exists():
            sys.exit(f"{what} not found at {path}")
    torch.set_num_threads(s.threads)
    dense = load_dense(s.model, s.checkpoint)
    # what changes a cell's numbers (targets and seeds are in the cells' keys; the checkpoint by content, so
    # another checkout's copy matches): runs with other targets, seeds, variants or paths share the cache
    skip = ("threads", "targets", "seeds", "root", "checkpoint", "model")
    signature = {k: str(v) for k, v in dataclasses.asdict(s).items() if k not in skip}
    signature["checkpoint_sha256"] = sha256_file(s.checkpoint)
    cache = Cells(Path(args.cache or Path(args.out) / f"{name}.cells.json"), signature)
    val = build_split(dataclasses.replace(data_cfg(s), val_subset=s.test_images), "val", augment=False, seed=0)
    test = list(make_loader(val, 500, shuffle=False))
    dense_metrics = test_metrics(dense, test)
    print(f"dense: top-1 {dense_metrics['top1']:.2f}% on {dense_metrics['images']} test images", flush=True)
    aliases = dict(LOOKAHEAD_ONLY) if lookahead_inert(dense, s) else {}
    chosen = [v for v in (args.variants or VARIANTS) if v not in aliases]
    paper = [v for v in PAPER if v in ("cp", "cpli") or v in chosen]
    paper += [v for v in args.every_seed if v in chosen]
    screened = [v for v in chosen if v not in paper]
    done: list[dict[str, Any]] = []

    def cell(target: float, variant: str, seed: int, tune: bool = False) -> None:
        if variant in SEEDLESS and seed != s.seeds[0]:  # the first seed's prune, paired with this seed's cp
            first = run_cell(s, dense, target, variant, s.seeds[0], tune, test, cache)
            done.append({**first, "seed": seed, "same_as_seed": s.seeds[0]})
            return
        done.append(run_cell(s, dense, target, variant, seed, tune, test, cache))

    for target in s.targets:  # phase 1: the paper's cells, every seed
        for seed in s.seeds:
            for variant in paper:
                cell(target, variant, seed)
    for target in s.targets:  # phase 2: every option beyond the paper, first seed
        for variant in screened:
            cell(target, variant, s.seeds[0])
    best = best_variant(done, min(s.targets), s.seeds[0], set(paper))
    for target in s.targets:  # phase 3: the best variant, every seed
        for seed in s.seeds[1:]:
            if best:
                cell(target, best, seed)
    for target in [] if args.no_finetune else (args.tune_targets or s.targets):  # phase 4: the identical fine-tune
        extra = [v for v in paper if v not in PAPER]
        tuned = (
            [*paper, *([best] if best else [])] if args.tune_all else ["cp", "cpli", *extra, *([best] if best else [])]
        )
        for seed in s.seeds:
            for variant in tuned:
                if any(c["target"] == target and c["variant"] == variant and c["seed"] == seed for c in done):
                    cell(target, variant, seed, tune=True)
    cells = list({(c["target"], c["variant"], c["seed"]): c for c in done}.values())
    rows, summary = summarise(cells, s, aliases)
    stats_rows, stats = importance_stats(dense, cells, s)
    table = [
        f"Dense: {title} from {s.checkpoint.name}, top-1 "
        f"{dense_metrics['top1']:.2f}% on {dense_metrics['images']} CIFAR-10 test images (JPEG q75). Sampling: "
        f"{s.images} training images x {s.positions} positions per seed (seeds {s.seeds}); round_to {s.round_to}. "
        f"Best option beyond the paper (screened on seed {s.seeds[0]}): {best}. Fine-tune: {s.finetune_epochs} epoch(s), SGD lr {s.finetune_lr} cosine, "
        f"batch 128, seed 0, identical for every cell. Δ = variant - cp paired by seed, mean ± 95% t half-width. "
        f"Threads {s.threads}; load average per cell in the JSON. l1 reads no sampled data: one prune, paired "
        "with every seed's cp.",
        "",
        *rows,
        "",
        *versus_cpli(cells, s),
        "",
        *stats_rows,
    ]
    print("\n".join(table))
    data = {
        "settings": {**signature, "root": str(s.root), "checkpoint": str(s.checkpoint)},
        "dense": dense_metrics,
        "best_variant": best,
        "aliases": aliases,
        "summary": summary,
        "importance": stats,
        "cells": cells,
    }
    record(name, f"CPLI vs CP: paired ablation on CIFAR-10 {title}", table, data, s.threads, Path(args.out))


if __name__ == "__main__":
    main()
