"""Data sets by name: each builder returns a DataSplit; `make_loader` turns one into a DataLoader.

Small image sets are held in memory as uint8 tensors and transformed a batch at a time; large
ones (ImageNet folders, video clips) decode per sample in worker processes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler, Subset

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models.source import ModelSource
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe.sections import DataSection, Recipe


@dataclass
class DataSplit:
    dataset: Dataset[Any]
    num_classes: int
    sample_shape: tuple[int, ...]  # one input after transforms: (C, H, W) or (C, T, H, W)
    classes: list[str] = field(default_factory=list)
    batched: bool = False  # the dataset serves whole batches through __getitems__


Builder = Callable[[DataSection, str, bool, int], DataSplit]
_REGISTRY: dict[str, Builder] = {}
# What validation may know before loading anything: one sample's shape and the class count (None: only
# the files tell, e.g. an image folder's classes).
_SHAPES: dict[str, Callable[[DataSection], tuple[int, ...] | None]] = {}
_CLASSES: dict[str, Callable[[DataSection], int | None]] = {}
_MODULES = (
    "cplitool.toolchain.data.digits",
    "cplitool.toolchain.data.cifar",
    "cplitool.toolchain.data.imagefolder",
    "cplitool.toolchain.data.video",
    "cplitool.toolchain.data.synthetic",
)


def register_dataset(
    name: str,
    shape: Callable[[DataSection], tuple[int, ...] | None] = lambda cfg: None,
    classes: Callable[[DataSection], int | None] = lambda cfg: None,
) -> Callable[[Builder], Builder]:
    """Register a builder with what it yields, as far as the recipe alone tells: one sample's shape and
    the class count, so `cplitool check` can match them with the model before any data is read."""

    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        _SHAPES[name] = shape
        _CLASSES[name] = classes
        return fn

    return deco


def data_sample_shape(cfg: DataSection) -> tuple[int, ...] | None:
    """One input as the data set yields it, (C, H, W) or (C, T, H, W), or None when unknown."""
    return _SHAPES[cfg.name](cfg) if cfg.name in list_datasets() else None


def data_classes(cfg: DataSection) -> int | None:
    return _CLASSES[cfg.name](cfg) if cfg.name in list_datasets() else None


def list_datasets() -> list[str]:
    for module in _MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY)


def build_split(cfg: DataSection, split: str, augment: bool, seed: int = 0) -> DataSplit:
    """Build `split` ("train" or "val") of the recipe's data set; `augment` picks training transforms."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if cfg.name not in list_datasets():
        raise UsageError(f"data.name: unknown data set {cfg.name!r}; registered: {', '.join(list_datasets())}")
    data = _REGISTRY[cfg.name](cfg, split, augment, seed)
    return seeded_subset(data, cfg.train_subset if split == "train" else cfg.val_subset, seed)


def seeded_subset(data: DataSplit, size: int, seed: int) -> DataSplit:
    """A uniform random sample of `size` samples without replacement, drawn with `seed` (0 or a size at least
    the split's: all of it). Indices are kept in order for locality. Subsets that judge a model are drawn here,
    never as the first N of a split: a split stored class by class would otherwise hold one class only."""
    total = len(data.dataset)  # type: ignore[arg-type]
    if not size or size >= total:
        return data
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(total, generator=g)[:size].sort().values.tolist()
    dataset = data.dataset.subset(idx) if data.batched else Subset(data.dataset, idx)  # type: ignore[attr-defined]
    return replace(data, dataset=dataset)


def recipe_input_shape(recipe: Recipe) -> tuple[int, ...]:
    """One input as the recipe feeds the model, known without loading the data: model.input_shape or the
    registry's shape, with the synthetic shape, data.image_size (or an image folder's stored size) and
    data.clip_len taking precedence. `cplitool info` counts MACs at this shape."""
    if recipe.data.name == "synthetic":
        return tuple(recipe.data.synthetic_shape)
    shape = list(ModelSource.of(recipe).shape())
    side = recipe.data.image_size
    if not side and recipe.data.name == "imagefolder":
        from cplitool.toolchain.data.stored_size import stored_side

        side = stored_side(recipe.data)
    if side:
        shape[-2:] = [side, side]
    if len(shape) == 4 and recipe.data.name == "video":
        shape[1] = recipe.data.clip_len
    return tuple(shape)


def set_epoch(loader: DataLoader[Any], epoch: int, seed: int = 0) -> None:
    """Make epoch `epoch`'s order and augmentation a function of (seed, epoch) alone.

    Without this, epoch k's shuffle depends on every earlier epoch having been drawn, so a run
    resumed from a checkpoint would see different batches than an uninterrupted one.
    """
    sampler: Any = loader.sampler
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler) and sampler.generator is not None:
        sampler.generator.manual_seed(seed * 100_003 + epoch)
    if loader.generator is not None:  # worker processes' seeds (random transforms of streamed sets)
        loader.generator.manual_seed(seed * 100_003 + epoch)
    ds: Any = loader.dataset
    while isinstance(ds, Subset):
        ds = ds.dataset
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)


def _passthrough(batch: Any) -> Any:
    return batch


_clamp_noted: set[tuple[int, int]] = set()


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as torch's DataLoader counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(workers: int) -> int:
    """`workers`, at most the usable cores: more only contend for them (and make torch warn); says so once."""
    cores = usable_cores()
    if workers <= cores:
        return workers
    if (workers, cores) not in _clamp_noted:
        _clamp_noted.add((workers, cores))
        console.print(f"note: data.workers = {workers} clamped to the {cores} usable cores", highlight=False)
    return cores


def make_loader(
    data: DataSplit,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    workers: int = 0,
    drop_last: bool = False,
    shard: bool = True,
) -> DataLoader[Any]:
    """A DataLoader over `data`; under torch.distributed each process gets its own shard (unless `shard` is
    False: every process then sees all of it, e.g. to compute identical validation metrics on every rank)."""
    ds: Any = data.dataset  # a map-style data set with __len__
    generator = torch.Generator().manual_seed(seed)  # order, and the seeds of worker processes
    if shard and torch.distributed.is_available() and torch.distributed.is_initialized():
        sampler: Any = DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif shuffle:
        sampler = RandomSampler(ds, generator=generator)
    else:
        sampler = SequentialSampler(ds)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=0 if data.batched else worker_count(workers),
        generator=generator,
        collate_fn=_passthrough if data.batched else None,
        persistent_workers=False,
    )
