"""Export-only equivalents for modules the ONNX exporters cannot convert.

Adaptive average pooling whose output size does not divide the input size (C3D's (1, 4, 4) pool on a
small clip, torchvision VGG's 7x7 pool on 32x32 images) has no ONNX counterpart in either torch.onnx
exporter. For the fixed per-sample shape being exported it is a linear map along each pooled axis, so
it is replaced by constant averaging matrices: the same arithmetic, which the parity check then confirms.
The user's model is never modified: the rewrite works on a copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def averaging_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix whose row i averages PyTorch's adaptive window [floor(i*n/m), ceil((i+1)*n/m))."""
    m = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, math.ceil((i + 1) * n_in / n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


class PoolAsMatmul(nn.Module):
    """Adaptive average pooling over the last len(matrices) axes as one matmul per axis."""

    def __init__(self, matrices: list[torch.Tensor]) -> None:
        super().__init__()
        self.dims = len(matrices)
        for i, m in enumerate(matrices):
            self.register_buffer(f"m{i}", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x.dim() - 1  # positive axes: the TorchScript exporter writes negative ones into Transpose's perm
        for i in range(self.dims):
            axis = last - self.dims + 1 + i
            x = torch.matmul(x.transpose(axis, last), getattr(self, f"m{i}").t()).transpose(axis, last)
        return x


def _out_sizes(module: nn.Module, in_sizes: tuple[int, ...]) -> tuple[int, ...]:
    size: Any = module.output_size  # int, None or a tuple of them
    sizes = (size,) * len(in_sizes) if isinstance(size, int) or size is None else tuple(size)
    return tuple(i if o is None else int(o) for i, o in zip(in_sizes, sizes, strict=True))


def exportable(model: nn.Module, sample: torch.Tensor) -> tuple[nn.Module, list[str]]:
    """A copy of `model` in which every adaptive average pool that the exporters reject at `sample`'s shape
    is a PoolAsMatmul; returns the copy and the names of the replaced modules (empty: the model itself)."""
    seen: dict[str, tuple[int, ...]] = {}

    def recorder(name: str, dims: int) -> Callable[..., None]:
        def record(_mod: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            seen[name] = tuple(args[0].shape[-dims:])

        return record

    hooks = [
        m.register_forward_hook(recorder(name, ADAPTIVE_AVG.index(type(m)) + 1))
        for name, m in model.named_modules()
        if isinstance(m, ADAPTIVE_AVG)
    ]
    if not hooks:
        return model, []
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for h in hooks:
            h.remove()
    todo = {}
    for name, in_sizes in seen.items():
        out_sizes = _out_sizes(model.get_submodule(name), in_sizes)
        if any(i % o for i, o in zip(in_sizes, out_sizes, strict=True)):
            todo[name] = [averaging_matrix(i, o) for i, o in zip(in_sizes, out_sizes, strict=True)]
    if not todo:
        return model, []
    clone = copy.deepcopy(model)
    for name, matrices in todo.items():
        parent, _, child = name.rpartition(".")
        setattr(clone.get_submodule(parent) if parent else clone, child, PoolAsMatmul(matrices))
    return clone.eval(), sorted(todo)
