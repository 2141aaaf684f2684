"""Video clips for C3D (UCF-101 style): <root>/<split>/<class>/<clip>, where a clip is a folder of
frame images (sorted by name) or a .npy array (T, H, W, C) uint8. Decoded per sample in workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cplitool.toolchain.data.imagefolder import split_dir
from cplitool.toolchain.data.registry import DataSplit, register_dataset
from cplitool.toolchain.data.transforms import Normalize
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.sections import DataSection

MEAN, STD = (0.433, 0.404, 0.378), (0.268, 0.262, 0.275)  # commonly used UCF-101 frame statistics
FRAME_EXT = {".jpg", ".jpeg", ".png"}
RESIZE = (128, 171)  # C3D's frame size before the 112x112 crop


def resize_for(size: int) -> tuple[int, int]:
    """Frame size before cropping `size`: C3D's 128x171 for 112, scaled alike for other sizes."""
    return round(size * RESIZE[0] / 112), round(size * RESIZE[1] / 112)


def read_clip(path: Path) -> np.ndarray:
    """All frames of a clip as uint8 (T, H, W, C)."""
    if path.suffix == ".npy":
        try:
            clip = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: unreadable clip ({e})") from None
        if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
            raise UsageError(f"{path}: expected a uint8 array (T, H, W, 3), got {clip.dtype} {clip.shape}")
        return clip
    from PIL import Image

    frames = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXT)
    if not frames:
        raise UsageError(f"{path}: clip folder holds no frames ({', '.join(sorted(FRAME_EXT))})")
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])


class VideoClips(Dataset[tuple[torch.Tensor, int]]):
    def __init__(
        self,
        clips: list[tuple[Path, int]],
        clip_len: int,
        size: int,
        augment: bool,
        normalize: Normalize,
        seed: int,
    ) -> None:
        self.clips, self.clip_len, self.size, self.augment, self.normalize = (
            clips,
            clip_len,
            size,
            augment,
            normalize,
        )
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # One generator per (seed, epoch, clip): worker processes draw different crops, every epoch
        # draws new ones, and a resumed run repeats them exactly.
        rng = np.random.default_rng([self.seed, self.epoch, i])
        path, label = self.clips[i]
        frames = read_clip(path)
        t = len(frames)
        start = (
            int(rng.integers(0, max(1, t - self.clip_len + 1))) if self.augment else max(0, (t - self.clip_len) // 2)
        )
        idx = np.arange(start, start + self.clip_len) % t  # loop short clips
        x = torch.from_numpy(frames[idx]).permute(3, 0, 1, 2).float()  # (C, T, H, W)
        h, w = resize_for(self.size)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if self.augment:
            top, left = (
                int(rng.integers(0, h - self.size + 1)),
                int(rng.integers(0, w - self.size + 1)),
            )
        else:
            top, left = (h - self.size) // 2, (w - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        if self.augment and rng.random() < 0.5:
            x = x.flip(-1)
        return self.normalize(x.clamp(0, 255)[None])[0], label


@register_dataset("video", shape=lambda cfg: (3, cfg.clip_len, cfg.image_size or 112, cfg.image_size or 112))
def build_video(cfg: DataSection, split: str, augment: bool, seed: int) -> DataSplit:
    folder = split_dir(cfg, split)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    clips = [
        (c, k)
        for k, name in enumerate(classes)
        for c in sorted((folder / name).iterdir())
        if c.is_dir() or c.suffix == ".npy"
    ]
    if not clips:
        raise UsageError(f"data.root: {folder} holds no clips (expected <class>/<clip folder or .npy>)")
    size = cfg.image_size or 112
    normalize = Normalize(tuple(cfg.mean) or MEAN, tuple(cfg.std) or STD)
    return DataSplit(
        VideoClips(clips, cfg.clip_len, size, augment, normalize, seed),
        len(classes),
        (3, cfg.clip_len, size, size),
        classes,
    )
