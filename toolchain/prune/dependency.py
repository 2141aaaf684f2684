"""Torch-Pruning's dependency graph of a model, with the two index mappings that abort a whole graph guarded.

Its own module because both the plan and the plan's dry run (which removes the planned channels from a copy)
need the graph, and the plan calls the dry run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cplitool.toolchain.errors import UsageError


def _refuse_concat(graph: Any, node: Any) -> None:
    inputs = ", ".join(str(n.name).split(" ")[0] for n in node.inputs[:3])
    raise UsageError(
        f"Torch-Pruning cannot infer the channels of the concatenation of {inputs}"
        f"{' and more' if len(node.inputs) > 3 else ''} (a dual-path or otherwise unusual block): "
        "its dependency graph, and so pruning, is not possible for this model"
    )


def _guard_index_mappings() -> None:
    """Torch-Pruning 1.6 aborts a whole graph on two index mappings. It divides by a channel count it infers
    as 0 for a channel shuffle's reshape (ShuffleNet): such a reshape is left without a mapping, and the
    groups through it are refused (find_groups sees the transpose between its members). It adds None to an
    int for a concatenation whose input widths it cannot infer (DPN's dual paths): a one-line usage error."""
    from torch_pruning.dependency import index_mapping

    for attr, error, fallback in (
        ("update_reshape_index_mapping", ZeroDivisionError, None),
        ("update_concat_index_mapping", TypeError, _refuse_concat),
    ):
        original = getattr(index_mapping, attr)
        if getattr(original, "guarded", False):
            continue

        def guarded(
            graph: Any, node: Any, original: Any = original, error: Any = error, fallback: Any = fallback
        ) -> None:
            try:
                original(graph, node)
            except error:
                if fallback is not None:
                    fallback(graph, node)

        guarded.guarded = True  # type: ignore[attr-defined]
        setattr(index_mapping, attr, guarded)


def graph(model: nn.Module, input_shape: tuple[int, ...]) -> Any:
    """Torch-Pruning's dependency graph of `model`, traced with one zero input on the model's device."""
    import torch_pruning as tp

    _guard_index_mappings()

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return dg
