"""CIFAR-10 in torchvision's layout (cifar-10-batches-py); downloads only when the recipe says so."""

from __future__ import annotations

import torch

from cplitool.toolchain.data.cached import CachedImages
from cplitool.toolchain.data.registry import DataSplit, register_dataset
from cplitool.toolchain.data.transforms import Normalize
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.sections import DataSection

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@register_dataset("cifar10", shape=lambda cfg: (3, 32, 32), classes=lambda cfg: len(CLASSES))
def build_cifar10(cfg: DataSection, split: str, augment: bool, seed: int) -> DataSplit:
    from torchvision.datasets import CIFAR10

    try:
        raw = CIFAR10(cfg.root, train=split == "train", download=cfg.download)
    except RuntimeError as e:
        raise UsageError(
            f"data.root: {cfg.root}: no CIFAR-10 found ({e}); set data.download = true on a machine with network access"
        ) from None
    images = torch.from_numpy(raw.data).permute(0, 3, 1, 2).contiguous()
    normalize = Normalize(tuple(cfg.mean) or MEAN, tuple(cfg.std) or STD)
    ds = CachedImages(images, torch.tensor(raw.targets), normalize, 4 if augment else None, seed)
    return DataSplit(ds, 10, (3, 32, 32), CLASSES, batched=True)
