"""scikit-learn's bundled handwritten digits (8x8, grey, 1,797 images): the offline data set."""

from __future__ import annotations

import numpy as np
import torch

from cplitool.toolchain.data.cached import CachedImages
from cplitool.toolchain.data.registry import DataSplit, register_dataset
from cplitool.toolchain.data.transforms import Normalize
from cplitool.toolchain.recipe.sections import DataSection

MEAN, STD = (0.306,), (0.377,)  # measured over all 1,797 images scaled to [0, 1]
TEST_FRACTION = 0.2


@register_dataset("digits", shape=lambda cfg: (1, 8, 8), classes=lambda cfg: 10)
def build_digits(cfg: DataSection, split: str, augment: bool, seed: int) -> DataSplit:
    """A fixed stratified 80/20 split (independent of the run seed, so test accuracy is comparable)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None]  # values 0..16 -> 0..255
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=TEST_FRACTION, stratify=d.target, random_state=0
    )
    idx = train_idx if split == "train" else test_idx
    normalize = Normalize(tuple(cfg.mean) or MEAN, tuple(cfg.std) or STD)
    ds = CachedImages(
        torch.from_numpy(images[idx]),
        torch.from_numpy(d.target[idx]).long(),
        normalize,
        1 if augment else None,
        seed,
        flip=False,
    )
    return DataSplit(ds, 10, (1, 8, 8), [str(i) for i in range(10)], batched=True)
