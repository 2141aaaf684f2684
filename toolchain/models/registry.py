"""A small name -> constructor registry (in the manner of timm), with each model's input shape."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from cplitool.toolchain.errors import UsageError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]  # one sample: (C, H, W) or (C, T, H, W)
    description: str


_REGISTRY: dict[str, ModelSpec] = {}
_MODULES = (
    "cplitool.toolchain.models.vgg",
    "cplitool.toolchain.models.resnet_cifar",
    "cplitool.toolchain.models.torchvision_zoo",
    "cplitool.toolchain.models.c3d",
)


def register(
    name: str, input_shape: tuple[int, ...], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelSpec(name, fn, input_shape, description)
        return fn

    return deco


def _load_all() -> dict[str, ModelSpec]:
    for module in _MODULES:
        importlib.import_module(module)
    return _REGISTRY


def list_models() -> list[str]:
    return sorted(_load_all())


def get_spec(name: str) -> ModelSpec:
    specs = _load_all()
    if name not in specs:
        raise UsageError(f"unknown model {name!r}; registered: {', '.join(sorted(specs))}")
    return specs[name]


def input_shape(name: str, kwargs: dict[str, Any] | None = None) -> tuple[int, ...]:
    """Default per-sample input shape; an `in_channels` kwarg overrides the channel count."""
    shape = list(get_spec(name).input_shape)
    if kwargs and "in_channels" in kwargs:
        shape[0] = int(kwargs["in_channels"])
    return tuple(shape)


def create_model(name: str, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Build a registered architecture; a bad keyword argument is a usage error, not a traceback."""
    spec = get_spec(name)
    try:
        return spec.build(num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise UsageError(f"model.kwargs: {kwargs} do not fit {name!r}: {e}") from None
