"""Data-free channel selection baselines: filter L1 norm (Li et al. 2017) and uniform random."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def l1_keep(producer: Any, keep: int) -> np.ndarray:
    """The `keep` output filters of `producer` with the largest L1 norms, sorted."""
    w = producer.weight.detach()
    norms = w.abs().reshape(w.shape[0], -1).sum(1)
    return np.sort(torch.argsort(norms, descending=True, stable=True)[:keep].cpu().numpy())


def random_keep(channels: int, keep: int, gen: torch.Generator) -> np.ndarray:
    """`keep` of `channels` drawn uniformly without replacement (seeded), sorted."""
    return np.sort(torch.randperm(channels, generator=gen)[:keep].numpy())
