"""In-memory uint8 image sets served a batch at a time, and their on-disk decode cache."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.markup import escape
from torch.utils.data import Dataset

from cplitool.toolchain.data.transforms import Normalize, random_crop_flip
from cplitool.toolchain.errors import CplitoolError
from cplitool.toolchain.io import atomic_path
from cplitool.toolchain.progress import console


class CachedImages(Dataset[tuple[torch.Tensor, int]]):
    """uint8 images (N, C, H, W) and labels; `__getitems__` returns a transformed batch in one go."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        normalize: Normalize,
        crop_pad: int | None,
        seed: int,
        flip: bool = True,
    ) -> None:
        self.images, self.labels = images, labels
        self.normalize, self.crop_pad, self.flip = normalize, crop_pad, flip
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of epoch k depends only on (seed, k), so a resumed run sees the same batches."""
        self.generator.manual_seed(self.seed * 100_003 + epoch)

    def subset(self, idx: list[int]) -> CachedImages:
        return CachedImages(self.images[idx], self.labels[idx], self.normalize, self.crop_pad, self.seed, self.flip)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[idx]
        if self.crop_pad is not None:
            x = random_crop_flip(x, self.crop_pad, self.generator, self.flip)
        return self.normalize(x), self.labels[idx]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.__getitems__([i])
        return x[0], int(y[0])


def cached_arrays(
    key: str, cache_dir: str, build: Callable[[], tuple[np.ndarray, np.ndarray]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load decoded (images, labels) from the cache, or build and store them (atomically) first."""
    root = Path(cache_dir).expanduser() if cache_dir else Path.home() / ".cache" / "cplitool"
    path = root / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                return torch.from_numpy(f["images"]), torch.from_numpy(f["labels"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    images, labels = build()
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels)
    except (CplitoolError, OSError) as e:  # no cache is slower next time, not wrong
        console.print(f"[yellow]warning:[/yellow] decode cache not written ({escape(str(e))}); set data.cache_dir")
    return torch.from_numpy(images), torch.from_numpy(labels)
