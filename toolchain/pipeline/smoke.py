"""`--smoke`: the same recipe shrunk to a handful of images and steps, so CI can run every stage of
every recipe end to end in seconds. Real data is used (a small subset) where it is present, synthetic
inputs where it is absent; inputs and widths are made small where the real ones are slow on a CPU.
A smoke run writes to runs/<name>-smoke, never over the real run, and its accuracy means nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.recipe.load import merge
from cplitool.toolchain.recipe.sections import DataSection, ModelSection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

IMAGES = 64  # training and validation samples
STEPS = 2  # optimizer steps per epoch
SMALL_SIDE = 32  # input side for architectures built for 112-224 pixel inputs
SMALL_CLIP = 4  # frames per clip for video models
# Architectures whose full size is slow on a CPU even for a few images, and how to shrink them.
SMALL_MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "c3d": {"width": 0.125, "fc_width": 64},
    "vgg16_cifar": {"width": 0.25},
}

COMMON: dict[str, Any] = {
    "model": {"checkpoint": "", "pretrained": False},
    "data": {"batch_size": 16, "eval_batch_size": 32, "workers": 0},
    # Small learning rates: two steps at a full-size rate can blow the logits up, which no export check passes.
    "train": {"epochs": 1, "max_steps": STEPS, "lr": 0.01, "warmup_epochs": 0.0},
    "finetune": {"epochs": 1, "max_steps": STEPS, "lr": 0.001, "warmup_epochs": 0.0},
    "prune": {"num_images": IMAGES, "batch_size": 16},
    # Parity checks stay, at tolerances for barely trained weights: two SGD steps leave logits with a wide
    # range (deep nets such as ResNet-50 differ by ~2e-4 in FP32 and ~0.1 in FP16 on a few of them), which
    # the defaults, meant for trained models, reject. tests/deploy/export checks the default tolerances on
    # a trained model. The int8 accuracy gate is off: on 64 images one image is 1.6 points of top-1.
    "export": {
        "parity_images": 16,
        "calib_images": 16,
        "int8_max_drop": 100.0,
        "atol_fp32": 1e-3,
        "rtol_fp32": 1e-3,
        "atol_fp16": 0.25,
        "rtol_fp16": 0.25,
    },
    "bench": {"batches": [1, 8], "warmup_ms": 10.0, "min_duration_s": 0.05, "min_iters": 2, "repeats": 1},
}


def raw_tables(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: cannot read recipe: {e}") from None


def small_shape(model: dict[str, Any], kwargs: dict[str, Any]) -> list[int]:
    """The recipe's model's input shape, shrunk (`model`: the raw [model] table)."""
    from cplitool.toolchain.models.source import ModelSource

    name, given = model.get("name", ModelSection.name), tuple(model.get("input_shape", []))
    shape = list(ModelSource(name, kwargs=kwargs, input_shape=given).shape())
    if len(shape) == 4:
        return [shape[0], SMALL_CLIP, SMALL_SIDE, SMALL_SIDE]
    return [shape[0], min(shape[1], SMALL_SIDE), min(shape[2], SMALL_SIDE)]


def smoke_overrides(path: Path, real_data: bool) -> dict[str, Any]:
    """Overrides for the recipe at `path`: real data cut to a subset, or synthetic data of a small shape."""
    raw = raw_tables(path)
    model = raw.get("model", {})
    name = model.get("name", ModelSection.name)
    kwargs = {**model.get("kwargs", {}), **SMALL_MODEL_KWARGS.get(name, {})}
    run_name = raw.get("run", {}).get("name") or path.stem
    shape = small_shape(model, kwargs)
    data: dict[str, Any]
    if real_data:
        data = {"train_subset": IMAGES, "val_subset": IMAGES}
        if len(shape) == 4:
            data.update(clip_len=SMALL_CLIP, image_size=SMALL_SIDE)
        elif raw.get("data", {}).get("name", DataSection.name) in ("imagefolder", "video"):
            data["image_size"] = shape[-1]
    else:
        classes = model.get("num_classes", ModelSection.num_classes)
        data = {
            "name": "synthetic",
            "root": "",
            "synthetic_shape": shape,
            "synthetic_samples": IMAGES,
            "synthetic_classes": classes,
        }
    extra = {"run": {"name": f"{run_name}-smoke", "dir": ""}, "model": {"kwargs": kwargs}, "data": data}
    return merge(COMMON, extra)


def load_smoke(path: Path, load: Any) -> Recipe:
    """Load the recipe with smoke overrides via `load(overrides)`: real data when the recipe's data
    validates here, else synthetic data (a recipe that is wrong in any other way still fails)."""
    try:
        return load(smoke_overrides(path, real_data=True))
    except UsageError:
        return load(smoke_overrides(path, real_data=False))
