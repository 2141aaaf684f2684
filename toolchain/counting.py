"""MACs and parameters per layer, counted by torch's own FlopCounterMode (covers Conv3d and matmuls)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

LEAF_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class LayerCount:
    name: str
    kind: str
    in_channels: int
    out_channels: int
    macs: int
    params: int


@dataclass
class ModelCount:
    macs: int
    params: int
    layers: list[LayerCount]


def count_model(model: nn.Module, input_shape: tuple[int, ...]) -> ModelCount:
    """Count MACs (= FLOPs / 2 as torch counts them) of one sample, and parameters, per conv/linear layer.

    The forward runs on the meta device (shapes only, no arithmetic), so even C3D counts instantly and
    the model's own weights are untouched.
    """
    meta = {n: torch.empty_like(t, device="meta") for n, t in (*model.named_parameters(), *model.named_buffers())}
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            functional_call(model, meta, (torch.zeros(1, *input_shape, device="meta"),))
    finally:
        model.train(was_training)
    per_module = counter.get_flop_counts()  # keyed "<RootClass>.<module path>"
    root = type(model).__name__
    layers = []
    for name, m in model.named_modules():
        if isinstance(m, LEAF_TYPES):
            flops = sum(per_module.get(f"{root}.{name}", {}).values())
            is_linear = isinstance(m, nn.Linear)
            layers.append(
                LayerCount(
                    name=name,
                    kind=type(m).__name__,
                    in_channels=int(m.in_features if is_linear else m.in_channels),  # type: ignore[arg-type]
                    out_channels=int(m.out_features if is_linear else m.out_channels),  # type: ignore[arg-type]
                    macs=int(flops) // 2,
                    params=sum(p.numel() for p in m.parameters()),
                )
            )
    total = sum(per_module.get("Global", {}).values())
    return ModelCount(macs=int(total) // 2, params=sum(p.numel() for p in model.parameters()), layers=layers)
