"""Optimizer and learning-rate schedule from a train or finetune section (both share these keys)."""

from __future__ import annotations

import math

import torch
from torch import nn

from cplitool.toolchain.recipe.sections import FinetuneSection, TrainSection


def build_optimizer(model: nn.Module, cfg: TrainSection | FinetuneSection) -> torch.optim.Optimizer:
    """SGD or AdamW; no weight decay on biases and BatchNorm parameters (1-D tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at `step` of `total` (per-step schedules)."""
    if schedule == "constant":
        return 1.0
    if schedule == "onecycle":  # linear up over 30%, cosine down to ~0 (Smith's one-cycle shape)
        up = max(1, int(0.3 * total))
        if step < up:
            return 0.04 + 0.96 * step / up
        return 0.5 * (1 + math.cos(math.pi * (step - up) / max(1, total - up)))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainSection | FinetuneSection, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, cfg.schedule))
