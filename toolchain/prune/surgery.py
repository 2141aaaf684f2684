"""Real channel removal through Torch-Pruning's dependency graph, then CPLI's refitted consumer weights.

Removing a producer's output channels shrinks the producer (weight, bias), its BatchNorm and the
consumer's input channels (and anything else the graph ties to them, e.g. a classifier after flatten).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def remove_channels(dg: Any, producer: Any, keep: np.ndarray) -> None:
    """Keep only the output channels `keep` of `producer`, with every dependent layer following."""
    import torch_pruning as tp

    channels = producer.weight.shape[0]
    drop = sorted(set(range(channels)) - {int(i) for i in keep})
    if drop:
        dg.get_pruning_group(producer, tp.prune_conv_out_channels, idxs=drop).prune()


def set_weight(consumer: Any, weight_2d: torch.Tensor) -> None:
    """Write refitted weights (n, c'*k) into the consumer, whose input channels were already cut to c'."""
    w = consumer.weight
    if w.shape[1] * int(np.prod(w.shape[2:])) != weight_2d.shape[1]:
        raise ValueError(f"refitted weight {tuple(weight_2d.shape)} does not fit {tuple(w.shape)}")
    with torch.no_grad():
        w.copy_(weight_2d.reshape(w.shape))
