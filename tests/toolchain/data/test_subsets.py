"""Seeded random subsets: a split stored class by class must not be judged on its first class only."""

from __future__ import annotations

from pathlib import Path

import torch

from cplitool.toolchain.data import build_split
from cplitool.toolchain.data.cached import CachedImages
from cplitool.toolchain.data.registry import DataSplit, seeded_subset
from cplitool.toolchain.data.transforms import Normalize
from cplitool.toolchain.recipe.sections import DataSection


def sorted_split(per_class: int = 1000, classes: int = 10) -> DataSplit:
    """Labels 0,0,...,1,1,...: how an image folder lists its files."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8)
    ds = CachedImages(images, labels, Normalize((0.0,), (1.0,)), None, 0, flip=False)
    return DataSplit(ds, classes, (1, 2, 2), batched=True)


def class0_share(data: DataSplit) -> float:
    return float((data.dataset.labels == 0).float().mean())  # type: ignore[attr-defined]


def test_subset_of_a_sorted_split_holds_every_class() -> None:
    sub = seeded_subset(sorted_split(), 300, seed=0)
    labels = sub.dataset.labels  # type: ignore[attr-defined]
    assert len(labels) == 300 and set(labels.tolist()) == set(range(10))
    # An "always class 0" model scores the class-0 share: about 10%, never 100% as on the first 300 images.
    assert 0.05 < class0_share(sub) < 0.16


def test_subset_is_a_function_of_the_seed() -> None:
    data = sorted_split()
    first, again, other = (seeded_subset(data, 300, s).dataset.labels for s in (0, 0, 1))  # type: ignore[attr-defined]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_zero_or_oversized_subset_is_the_whole_split() -> None:
    data = sorted_split(per_class=3)
    assert seeded_subset(data, 0, 0) is data and seeded_subset(data, 30, 0) is data


def test_cifar10_300_image_subset_is_about_ten_percent_class_0(cifar_root: Path) -> None:
    cfg = DataSection(name="imagefolder", root=str(cifar_root), train_split="train", val_split="test")
    test = build_split(cfg, "val", augment=False)
    assert bool((test.dataset.labels[:300] == 0).all())  # type: ignore[attr-defined]  # stored class by class
    sub = seeded_subset(test, 300, seed=0)
    assert 0.05 < class0_share(sub) < 0.16
