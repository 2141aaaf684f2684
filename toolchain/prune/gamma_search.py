"""prune.gamma_search: the classification term's weight chosen per stage on held-out images.

CPLI's gamma_rel is one global constant in the paper. Here each stage may try several: for each value the
channels are selected and the consumer refitted on the sums without the held-out images (every HOLD_OUT-th
sampled image, the ones the refit's ridge search holds out), and the network as pruned so far, with that
stage's choice applied by masking the consumer's removed input channels, is scored by its cross-entropy on
the held-out images. The value with the lowest loss is then used on all the sums. gamma_rel = 0 is among
the candidates a user may give, so a stage where the classification term does not help can fall back to
reconstruction alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cplitool.toolchain.prune.plan import Stage
from cplitool.toolchain.prune.sampling import HOLD_OUT, GramSums, weight_2d
from cplitool.toolchain.prune.solver import solve_stage

MAX_HELD_IMAGES = 1024  # held-out images kept in memory for scoring (ImageNet-sized inputs: about 600 MB)


def held_images(loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out images and labels: every HOLD_OUT-th image in loader order, the same running id the Gram
    sums give each image (sampling.RowBlocks), at most MAX_HELD_IMAGES."""
    xs, ys, seen = [], [], 0
    for x, y in loader:
        ids = torch.arange(seen, seen + len(x))
        out = ids % HOLD_OUT == HOLD_OUT - 1
        xs.append(x[out])
        ys.append(y[out])
        seen += len(x)
    return torch.cat(xs)[:MAX_HELD_IMAGES], torch.cat(ys)[:MAX_HELD_IMAGES]


def masked_weight(consumer: nn.Module, c: int, keep: Any, fitted: torch.Tensor) -> torch.Tensor:
    """The consumer's full weight with the removed input channels zeroed and the kept ones set to `fitted`
    (n, len(keep) * k): the function the pruned and refitted layer computes, without surgery."""
    weight: Any = consumer.weight
    n = weight.shape[0]
    w = torch.zeros_like(weight).view(n, c, -1)
    w[:, torch.as_tensor(keep)] = fitted.to(w.dtype).view(n, len(keep), -1)
    return w.view_as(weight)


def held_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Mean cross-entropy of `model` on the held-out images, in batches of 100."""
    total = 0.0
    with torch.no_grad():
        for x, y in zip(images.split(100), labels.split(100), strict=True):
            total += float(F.cross_entropy(model(x.to(device)), y.to(device), reduction="sum"))
    return total / max(len(labels), 1)


def choose_gamma(
    model: nn.Module,
    stage: Stage,
    grams: GramSums,
    s: torch.Tensor,
    candidates: list[float],
    ridge: float,
    held: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
) -> tuple[float, dict[float, float]]:
    """(the candidate gamma_rel with the lowest held-out cross-entropy, every candidate's loss). `grams` must
    hold the held-out images' sums with their classification term (stage_grams(held_classification=True))."""
    if grams.held is None:
        raise ValueError("gamma_search needs the held-out images' sums")
    consumer: Any = model.get_submodule(stage.consumer)
    original = consumer.weight.detach().clone()
    W = weight_2d(consumer)
    train = grams.minus(grams.held)
    losses: dict[float, float] = {}
    try:
        for gamma_rel in candidates:
            solution = solve_stage(train, W, stage.channels, s, gamma_rel, stage.keep, ridge)
            with torch.no_grad():
                consumer.weight.copy_(masked_weight(consumer, stage.channels, solution.keep, solution.weight))
            losses[gamma_rel] = held_loss(model, *held, device)
    finally:
        with torch.no_grad():
            consumer.weight.copy_(original)
    return min(losses, key=lambda g: losses[g]), losses
