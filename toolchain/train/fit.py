"""The epoch driver shared by dense training and fine-tuning: evaluate every epoch, keep the best
weights, checkpoint after every epoch so a killed run continues where it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cplitool.toolchain.data import DataSplit, make_loader
from cplitool.toolchain.data.registry import set_epoch
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.io import safe_load, save_torch
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe.sections import DataSection, FinetuneSection, TrainSection
from cplitool.toolchain.runtime import is_main_process
from cplitool.toolchain.train.loop import LossFn, evaluate, train_one_epoch
from cplitool.toolchain.train.optim import build_optimizer, build_scheduler


@dataclass
class FitResult:
    model: nn.Module  # holds the best weights (by validation top-1)
    best: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def cross_entropy(label_smoothing: float) -> LossFn:
    return lambda logits, _images, targets: F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def fit(
    model: nn.Module,
    cfg: TrainSection | FinetuneSection,
    data_cfg: DataSection,
    train_data: DataSplit,
    val_data: DataSplit,
    device: torch.device,
    state_path: Path,
    state_key: str,
    seed: int = 0,
    loss_fn: LossFn | None = None,
) -> FitResult:
    """Train `model` for cfg.epochs; resume from `state_path` when it was written for the same `state_key`."""
    model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    net: nn.Module = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if distributed
        else model
    )
    train_loader = make_loader(
        train_data, data_cfg.batch_size, shuffle=True, seed=seed, workers=data_cfg.workers, drop_last=True
    )
    # Every rank evaluates the whole validation set: identical metrics, hence the same best epoch everywhere.
    val_loader = make_loader(val_data, data_cfg.eval_batch_size, shuffle=False, workers=data_cfg.workers, shard=False)
    if len(train_loader) == 0:
        raise UsageError(
            f"data.batch_size: {data_cfg.batch_size} is larger than the training set "
            f"({len(train_data.dataset)} samples; the last partial batch is dropped)"  # type: ignore[arg-type]
        )
    steps = min(len(train_loader), cfg.max_steps) if cfg.max_steps else len(train_loader)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    loss_fn = loss_fn or cross_entropy(cfg.label_smoothing)

    start, best, best_state, history = 0, {"top1": -1.0}, None, []
    if state_path.exists():
        state = safe_load(state_path)
        if state.get("key") != state_key:
            console.print(f"{state_path.name} was written for other settings: starting from epoch 1")
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            start, best, best_state, history = (
                state["epoch"] + 1,
                state["best"],
                state["best_state"],
                state["history"],
            )
            console.print(f"resuming from {state_path.name}: epoch {start + 1} of {cfg.epochs}")

    for epoch in range(start, cfg.epochs):
        set_epoch(train_loader, epoch, seed)
        stats = train_one_epoch(
            net, train_loader, loss_fn, optimizer, scheduler, scaler, device,
            amp=cfg.amp, channels_last=cfg.channels_last, max_steps=cfg.max_steps, label=f"epoch {epoch + 1}/{cfg.epochs}",
        )  # fmt: skip
        metrics = evaluate(model, val_loader, device, label=f"eval {epoch + 1}/{cfg.epochs}")
        row = {
            "epoch": epoch + 1,
            "train_loss": stats.loss,
            "train_top1": stats.top1,
            "images_per_s": stats.images_per_s,
            **metrics,
        }
        history.append(row)
        if metrics["top1"] > best["top1"]:
            best = {**metrics, "epoch": epoch + 1}
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if is_main_process():
            console.print(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {stats.loss:.3f}  train {stats.top1:.2f}%  "
                f"val {metrics['top1']:.2f}%  ({stats.images_per_s:,.0f} img/s, data {100 * stats.data_seconds / max(stats.seconds, 1e-9):.0f}% of time)"
            )
            state = {
                "key": state_key, "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "best": best, "best_state": best_state,
                "history": history,
            }  # fmt: skip
            save_torch(state_path, state)
    if best_state is not None:
        model.load_state_dict(best_state)
    elif not history:  # epochs = 0: report the model as it came
        best = {**evaluate(model, val_loader, device, label="eval"), "epoch": 0}
    return FitResult(model.cpu().eval(), best, history)


def summary(result: FitResult) -> dict[str, Any]:
    return {
        "best": result.best,
        "epochs": len(result.history),
        **({"last": result.history[-1]} if result.history else {}),
    }
