"""ImageNet-style folders (<root>/<split>/<class>/*.jpg). Small images are decoded once and cached as
uint8 (CIFAR-10 JPEG: 50,000 files in ~15 s once, then ~0.3 s); large ones stream through workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from cplitool.toolchain.data.cached import CachedImages, cached_arrays
from cplitool.toolchain.data.registry import DataSplit, register_dataset
from cplitool.toolchain.data.stored_size import stored_side
from cplitool.toolchain.data.transforms import Normalize
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.progress import progress_bar
from cplitool.toolchain.recipe.sections import DataSection

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CACHE_LIMIT_BYTES = 4 << 30
SMALL_SIDE = 64  # images up to this side get CIFAR-style pad-crop augmentation


def split_dir(cfg: DataSection, split: str) -> Path:
    folder = Path(cfg.root) / (cfg.train_split if split == "train" else cfg.val_split)
    key = "data.train_split" if split == "train" else "data.val_split"
    if not folder.is_dir():
        raise UsageError(f"{key}: {folder} does not exist (expected <root>/<split>/<class>/<image>)")
    return folder


class _Decode(Dataset[np.ndarray]):
    """Decode one file to a uint8 (C, H, W) array at `size` (0: as stored)."""

    def __init__(self, files: list[str], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.files[i]) as f:
            im = f.convert("RGB")
        if self.size and im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(im).transpose(2, 0, 1).copy()


def decode_all(files: list[str], size: int, workers: int, label: str) -> np.ndarray:
    loader = DataLoader(_Decode(files, size), batch_size=500, num_workers=workers, collate_fn=np.stack)
    out = []
    with progress_bar() as bar:
        task = bar.add_task(f"decoding {label}", total=len(files), unit="img")
        for batch in loader:
            out.append(batch)
            bar.advance(task, len(batch))
    return np.concatenate(out)


def sample_shape(cfg: DataSection) -> tuple[int, ...]:
    """RGB at data.image_size, else the stored size (cached folders) or 224; an unreadable first image
    is left for loading to report."""
    try:
        side = cfg.image_size or stored_side(cfg) or 224
    except (OSError, ValueError, SyntaxError):  # PIL reports broken files with all three
        side = cfg.image_size or 224
    return (3, side, side)


@register_dataset("imagefolder", shape=sample_shape)
def build_imagefolder(cfg: DataSection, split: str, augment: bool, seed: int) -> DataSplit:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    folder = split_dir(cfg, split)
    try:
        base = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as e:
        raise UsageError(f"data.root: {folder}: {e}") from None
    files = [p for p, _ in base.samples]
    with Image.open(files[0]) as im:
        side = cfg.image_size or max(im.size)
    normalize = Normalize(tuple(cfg.mean) or IMAGENET_MEAN, tuple(cfg.std) or IMAGENET_STD)
    fits = len(files) * 3 * side * side <= CACHE_LIMIT_BYTES
    if cfg.cache == "memory" or (cfg.cache == "auto" and fits and side <= SMALL_SIDE * 4):
        key = f"imagefolder|{folder.resolve()}|{len(files)}|{side}|{folder.stat().st_mtime_ns}"
        images, labels = cached_arrays(
            key,
            cfg.cache_dir,
            lambda: (
                decode_all(files, side, cfg.workers, f"{folder.name} ({len(files)} images)"),
                np.array(base.targets),
            ),
        )
        crop = (side // 8 if side <= SMALL_SIDE else 0) if augment else None
        ds: Any = CachedImages(images, labels.long(), normalize, crop, seed)
        return DataSplit(ds, len(base.classes), (3, side, side), base.classes, batched=True)
    return DataSplit(
        streaming_folder(folder, cfg, augment, normalize),
        len(base.classes),
        (3, cfg.image_size or 224, cfg.image_size or 224),
        base.classes,
    )


def streaming_folder(folder: Path, cfg: DataSection, augment: bool, normalize: Normalize) -> Dataset[Any]:
    """torchvision's standard ImageNet transforms, decoded per sample in worker processes."""
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    size = cfg.image_size or 224
    norm = T.Normalize(normalize.mean, normalize.std)
    if augment:
        tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    else:
        tf = T.Compose([T.Resize(int(size * 256 / 224)), T.CenterCrop(size), T.ToTensor(), norm])
    return ImageFolder(str(folder), transform=tf)
