"""The one short fine-tune the accuracy benchmarks give every pruned model, so their cells compare alike."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cplitool.toolchain.data.registry import set_epoch


def sgd_steps(model: nn.Module, loader: Any, steps: int, lr: float, seed: int = 0) -> float:
    """`steps` steps of plain cross-entropy with SGD (Nesterov, momentum 0.9, weight decay 5e-4) and a cosine
    schedule from `lr` to 0; pass k over the loader is ordered by (seed, k). Returns the seconds taken."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start, step, epoch = time.perf_counter(), 0, 0
    model.train()
    while step < steps:
        set_epoch(loader, epoch, seed)
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    model.eval()
    return time.perf_counter() - start
