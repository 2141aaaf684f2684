"""Data sets by name: digits offline, the CIFAR-10 JPEG folder, video clips, synthetic tensors, subsets, loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import recipe_input_shape, set_epoch
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.sections import DataSection


def first_batch(cfg: DataSection, split: str, augment: bool, seed: int, batch: int = 64) -> tuple[torch.Tensor, ...]:
    loader = make_loader(build_split(cfg, split, augment, seed), batch, shuffle=augment, seed=seed)
    return next(iter(loader))


def test_digits_offline_split() -> None:
    cfg = DataSection(name="digits")
    train, val = build_split(cfg, "train", augment=True), build_split(cfg, "val", augment=False)
    assert (len(train.dataset), len(val.dataset)) == (1437, 360)  # type: ignore[arg-type]
    assert train.num_classes == 10 and train.sample_shape == (1, 8, 8)
    x, y = first_batch(cfg, "val", False, 0)
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 0.5  # normalised
    counts = torch.bincount(val.dataset.labels, minlength=10)  # type: ignore[attr-defined]
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: 20% of ~180 per class


def test_digits_split_is_fixed_and_batches_repeat_with_the_seed() -> None:
    cfg = DataSection(name="digits")
    a = build_split(cfg, "val", augment=False, seed=0).dataset
    b = build_split(cfg, "val", augment=False, seed=5).dataset
    assert torch.equal(a.images, b.images)  # type: ignore[attr-defined]  # test set independent of the seed
    x1, y1 = first_batch(cfg, "train", True, seed=1)
    x2, y2 = first_batch(cfg, "train", True, seed=1)
    _x3, y3 = first_batch(cfg, "train", True, seed=2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(y1, y3)


def test_set_epoch_makes_each_epoch_a_function_of_seed_and_epoch() -> None:
    cfg = DataSection(name="digits")
    loader = make_loader(build_split(cfg, "train", True, seed=3), 32, shuffle=True, seed=3)

    def batch_of(epoch: int) -> torch.Tensor:
        set_epoch(loader, epoch, seed=3)
        return next(iter(loader))[0]

    e0, e1 = batch_of(0), batch_of(1)
    assert not torch.equal(e0, e1)
    assert torch.equal(batch_of(1), e1) and torch.equal(batch_of(0), e0)  # drawn again after other epochs


def test_subsets_are_seeded() -> None:
    cfg = DataSection(name="digits", train_subset=100, val_subset=50)
    a = build_split(cfg, "train", False, seed=0).dataset
    b = build_split(cfg, "train", False, seed=0).dataset
    c = build_split(cfg, "train", False, seed=1).dataset
    assert len(a) == 100 and len(build_split(cfg, "val", False).dataset) == 50  # type: ignore[arg-type]
    assert torch.equal(a.labels, b.labels)  # type: ignore[attr-defined]
    assert not torch.equal(a.images, c.images)  # type: ignore[attr-defined]


def test_synthetic() -> None:
    cfg = DataSection(name="synthetic", synthetic_shape=[3, 4, 16, 16], synthetic_samples=20, synthetic_classes=4)
    train, val = build_split(cfg, "train", True, seed=0), build_split(cfg, "val", False, seed=0)
    x, y = next(iter(make_loader(train, 8, shuffle=False)))
    assert x.shape == (8, 3, 4, 16, 16) and int(y.max()) < 4
    assert train.sample_shape == (3, 4, 16, 16) and train.num_classes == 4
    assert not torch.equal(train.dataset.tensors[0], val.dataset.tensors[0])  # type: ignore[attr-defined]
    assert torch.equal(build_split(cfg, "train", True, 0).dataset.tensors[0], train.dataset.tensors[0])  # type: ignore[attr-defined]


def test_unknown_split_and_missing_folder() -> None:
    with pytest.raises(ValueError):
        build_split(DataSection(name="digits"), "test", False)
    with pytest.raises(UsageError, match=r"data.val_split"):
        build_split(DataSection(name="imagefolder", root="/nonexistent"), "val", False)


def test_imagefolder_on_cifar10_jpeg(cifar_root: Path, tmp_path: Path) -> None:
    cfg = DataSection(name="imagefolder", root=str(cifar_root), cache_dir=str(tmp_path), workers=2)
    val = build_split(cfg, "val", augment=False)
    assert len(val.dataset) == 10_000  # type: ignore[arg-type]
    assert val.num_classes == 10 and val.classes[0] == "airplane" and val.sample_shape == (3, 32, 32)
    assert val.batched  # decoded once into memory as uint8
    assert val.dataset.images.dtype == torch.uint8  # type: ignore[attr-defined]
    assert len(list(tmp_path.glob("*.npz"))) == 1  # the decode cache
    again = build_split(cfg, "val", augment=False)  # from the cache
    assert torch.equal(again.dataset.images, val.dataset.images)  # type: ignore[attr-defined]
    x, y = next(iter(make_loader(val, 100, shuffle=False)))
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (100,)


def make_video_root(root: Path) -> None:
    """Two classes per split; each holds one .npy clip and one folder of PNG frames."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, cls in enumerate(("jump", "run")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            np.save(folder / "a.npy", rng.integers(0, 255, (5, 20, 24, 3), dtype=np.uint8))
            (folder / "b").mkdir()
            for t in range(4):
                Image.fromarray(np.full((20, 24, 3), 40 * t + k, np.uint8)).save(folder / "b" / f"{t:03d}.png")


def test_video_clips(tmp_path: Path) -> None:
    make_video_root(tmp_path)
    cfg = DataSection(name="video", root=str(tmp_path), clip_len=8, image_size=16, workers=0)
    train = build_split(cfg, "train", augment=True, seed=0)
    assert train.classes == ["jump", "run"] and train.num_classes == 2
    assert train.sample_shape == (3, 8, 16, 16) and len(train.dataset) == 4  # type: ignore[arg-type]
    x, y = next(iter(make_loader(train, 4, shuffle=False)))
    assert x.shape == (4, 3, 8, 16, 16) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 1, 1]
    val = build_split(cfg, "val", augment=False)
    assert torch.equal(val.dataset[1][0], val.dataset[1][0])  # type: ignore[index]  # eval: centre crop


def test_video_augmentation_varies_by_epoch_and_repeats(tmp_path: Path) -> None:
    make_video_root(tmp_path)
    ds = build_split(DataSection(name="video", root=str(tmp_path), clip_len=4, image_size=16), "train", True, 0).dataset
    ds.set_epoch(0)  # type: ignore[attr-defined]
    e0 = [ds[i][0] for i in range(4)]  # type: ignore[index]
    ds.set_epoch(1)  # type: ignore[attr-defined]
    e1 = [ds[i][0] for i in range(4)]  # type: ignore[index]
    ds.set_epoch(0)  # type: ignore[attr-defined]
    assert all(torch.equal(a, ds[i][0]) for i, a in enumerate(e0))  # type: ignore[index]
    assert any(not torch.equal(a, b) for a, b in zip(e0, e1, strict=True))


def test_bad_video_clip_is_a_usage_error(tmp_path: Path) -> None:
    make_video_root(tmp_path)
    np.save(tmp_path / "train" / "jump" / "a.npy", np.zeros((4, 4), np.float32))
    ds = build_split(DataSection(name="video", root=str(tmp_path)), "train", False).dataset
    with pytest.raises(UsageError, match=r"expected a uint8 array \(T, H, W, 3\)"):
        ds[0]  # type: ignore[index]


def test_recipe_input_shape(tmp_path: Path) -> None:
    from cplitool.toolchain.recipe.sections import ModelSection, Recipe

    video = Recipe(tmp_path, model=ModelSection(name="c3d"), data=DataSection(name="video", clip_len=8, image_size=32))
    assert recipe_input_shape(video) == (3, 8, 32, 32)
    synthetic = Recipe(tmp_path, data=DataSection(name="synthetic", synthetic_shape=[3, 24, 24]))
    assert recipe_input_shape(synthetic) == (3, 24, 24)
    assert recipe_input_shape(Recipe(tmp_path, model=ModelSection(name="resnet50"))) == (3, 224, 224)


def test_recipe_input_shape_reads_an_image_folders_stored_size(cifar_root: Path, tmp_path: Path) -> None:
    from cplitool.toolchain.recipe.sections import ModelSection, Recipe

    folder = Recipe(
        tmp_path, model=ModelSection(name="resnet50"), data=DataSection(name="imagefolder", root=str(cifar_root))
    )
    assert recipe_input_shape(folder) == (3, 32, 32)  # CIFAR JPEGs as stored, not resnet50's 224
