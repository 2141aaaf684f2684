"""Refusing NaN and infinite numbers: a model whose weights or outputs are not finite fails every check.

NaN compares false with everything, so without this a NaN model passes an element-wise parity check, and
its arg-max (always class 0) scores as a real accuracy. Each check names the first non-finite tensor.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from cplitool.toolchain.errors import CplitoolError


class NonFiniteError(CplitoolError):
    """Weights or outputs hold NaN or infinite values."""


def describe(name: str, values: np.ndarray) -> str | None:
    """'<name> holds 3 NaN and 1 infinite of 10 values', or None when all are finite."""
    if values.dtype.kind not in "fc" or bool(np.isfinite(values).all()):
        return None
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    return f"{name!r} holds {nan} NaN and {inf} infinite of {values.size} values"


def first_non_finite(tensors: Iterable[tuple[str, np.ndarray]]) -> str | None:
    """The description of the first named array with a non-finite value, else None."""
    for name, values in tensors:
        found = describe(name, values)
        if found:
            return found
    return None


def module_tensors(model: nn.Module) -> Iterable[tuple[str, np.ndarray]]:
    for name, t in model.state_dict().items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            yield name, t.detach().float().cpu().numpy()


def require_finite_weights(model: nn.Module, what: str) -> None:
    """Raise NonFiniteError naming the first parameter or buffer of `model` that is not finite."""
    found = first_non_finite(module_tensors(model))
    if found:
        raise NonFiniteError(f"{what}: weights are not finite: {found}; it cannot be checked, scored or timed")


def require_finite_output(values: np.ndarray, name: str, what: str) -> None:
    """Raise NonFiniteError when the output `name` of `what` holds a NaN or an infinity."""
    found = describe(name, values)
    if found:
        raise NonFiniteError(f"{what}: output {found}: the model's outputs are not finite")
