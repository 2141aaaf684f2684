"""One training epoch and one evaluation pass, kept short and plain (after torchvision's references)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cplitool.toolchain.progress import progress_bar

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, images, targets) -> loss


@dataclass
class EpochStats:
    loss: float
    top1: float
    images: int
    seconds: float
    data_seconds: float  # time spent waiting for the loader

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[None]:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    *,
    amp: bool,
    channels_last: bool,
    max_steps: int,
    label: str,
) -> EpochStats:
    model.train()
    total = min(len(loader), max_steps) if max_steps else len(loader)  # type: ignore[arg-type]
    loss_sum = correct = seen = 0.0
    data_time = 0.0
    start = tick = time.perf_counter()
    with progress_bar(transient=True) as bar:
        task = bar.add_task(label, total=total, unit="batch")
        for step, (images, targets) in enumerate(loader):
            if step >= total:
                break
            data_time += time.perf_counter() - tick
            images, targets = to_device(images, device, channels_last), targets.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(images)
                loss = loss_fn(logits, images, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n = targets.numel()
            loss_sum += loss.item() * n
            correct += (logits.argmax(1) == targets).sum().item()
            seen += n
            bar.advance(task)
            tick = time.perf_counter()
    return EpochStats(
        loss_sum / max(seen, 1),
        100.0 * correct / max(seen, 1),
        int(seen),
        time.perf_counter() - start,
        data_time,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    label: str = "eval",
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (percent) and mean cross-entropy over the whole loader."""
    model.eval()
    loss_sum = top1 = top5 = seen = 0.0
    with progress_bar(transient=True) as bar:
        task = bar.add_task(label, total=len(loader), unit="batch")  # type: ignore[arg-type]
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            logits = model(images).float()
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
            k = min(5, logits.shape[1])
            topk = logits.topk(k, 1).indices
            top1 += (topk[:, 0] == targets).sum().item()
            top5 += (topk == targets[:, None]).any(1).sum().item()
            seen += targets.numel()
            bar.advance(task)
    seen = max(seen, 1)
    return {
        "top1": 100.0 * top1 / seen,
        "top5": 100.0 * top5 / seen,
        "loss": loss_sum / seen,
        "samples": int(seen),
    }
