"""Batched transforms on uint8 tensors: cheap enough to run in the main process, so small cached
data sets need no worker processes (the CPU stays on compute)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalize:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, ...) in [0, 255] -> float32 normalised per channel."""
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, device=x.device).view(shape) * 255.0
        std = torch.tensor(self.std, device=x.device).view(shape) * 255.0
        return (x.float() - mean) / std


def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Pad-and-crop plus horizontal flip for a uint8 batch (N, C, H, W), as in the CIFAR references."""
    n, _, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
        idx = torch.arange(n)[:, None, None, None]
        chans = torch.arange(x.shape[1])[None, :, None, None]
        x = padded[idx, chans, rows, cols]
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x
