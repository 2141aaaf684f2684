"""One sample's input shape, from an example batch or an explicit shape: every API call needs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cplitool.toolchain.errors import UsageError


def sample_shape(example_input: Any, input_shape: Sequence[int] | None, where: str) -> tuple[int, ...]:
    """(C, H, W) or (C, T, H, W) of one sample; `example_input` is a batch (its first axis is dropped)."""
    if example_input is not None:
        shape = tuple(int(d) for d in example_input.shape)
        if len(shape) < 2:
            raise UsageError(f"{where}: example_input must be a batch (N, C, ...), got shape {shape}")
        return shape[1:]
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    raise UsageError(f"{where}: pass example_input (a batch, e.g. torch.randn(1, 3, 32, 32)) or input_shape=(C, H, W)")
