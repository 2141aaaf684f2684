"""Random inputs with random labels: for latency measurements and tests, never for an accuracy figure."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from cplitool.toolchain.data.registry import DataSplit, register_dataset
from cplitool.toolchain.recipe.sections import DataSection


@register_dataset("synthetic", shape=lambda cfg: tuple(cfg.synthetic_shape), classes=lambda cfg: cfg.synthetic_classes)
def build_synthetic(cfg: DataSection, split: str, augment: bool, seed: int) -> DataSplit:
    g = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
    shape = tuple(cfg.synthetic_shape)
    n = cfg.synthetic_samples
    classes = cfg.synthetic_classes
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return DataSplit(TensorDataset(x, y), classes, shape, [str(i) for i in range(classes)])
