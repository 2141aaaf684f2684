"""Shared checks for scope = "all": prune, compare with the masked dense model, measure the real error."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from cplitool.toolchain.counting import count_model
from cplitool.toolchain.prune.group_pruner import GroupReport, choose_groups, remove_groups
from cplitool.toolchain.prune.plan import PrunePlan, Stage, make_plan
from cplitool.toolchain.prune.pruner import Terms
from cplitool.toolchain.prune.sampling import capture_original, layer_rows

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def batches(shape: tuple[int, ...], n: int = 2, size: int = 16, classes: int = 10) -> Batches:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(size, *shape, generator=gen), torch.randint(0, classes, (size,), generator=gen)) for _ in range(n)
    ]


@dataclass
class Pruned:
    dense: nn.Module
    masked: nn.Module  # the dense-shaped model with removed channels masked (and consumers refitted)
    pruned: nn.Module
    plan: PrunePlan
    reports: list[GroupReport]


def prune_all(model: nn.Module, shape: tuple[int, ...], cfg: object, data: Batches) -> Pruned:
    """Plan, choose groups on the masked model, then the real surgery (model is changed in place)."""
    dense = copy.deepcopy(model)
    plan = make_plan(model, shape, cfg)  # type: ignore[arg-type]
    reports, _ = choose_groups(model, plan, cfg, data, torch.device("cpu"), 0, Terms.of(cfg).classification)  # type: ignore[arg-type]
    masked = copy.deepcopy(model)
    remove_groups(model, plan, reports)
    return Pruned(dense, masked, model, plan, reports)


def assert_equals_masked(p: Pruned, shape: tuple[int, ...]) -> None:
    x = torch.randn(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(p.pruned(x), p.masked(x), rtol=1e-4, atol=1e-5)
    assert count_model(p.pruned, shape).macs == p.plan.macs_after  # the plan's arithmetic is what is counted


def real_errors(p: Pruned, cfg: object, data: Batches, consumers: list[str]) -> dict[str, float]:
    """sum||Y_pruned - Y||^2 / sum||Y||^2 of each of `consumers`' output (bias excluded) at the positions
    the pruner sampled, Y from the dense model: what the report's err_after claims. Measured on the masked
    model (equal to the pruned one, see assert_equals_masked), whose consumers still have the output
    channels a later group removed: the report's error counts them too."""
    positions = cfg.positions  # type: ignore[attr-defined]
    every = sorted({m.name for g in p.plan.groups for m in g.consumers})  # the pruner's capture, same draws
    stages = [Stage("", n, 0) for n in every]
    cap = capture_original(copy.deepcopy(p.dense), stages, data, positions=positions, seed=0, grads=False,
                           lookahead=set(), device=torch.device("cpu"))  # fmt: skip
    out: dict[str, list[torch.Tensor]] = {n: [] for n in consumers}
    layers = {n: p.masked.get_submodule(n) for n in consumers}
    # a copy: a later in-place ReLU (C3D's classifier) would otherwise rewrite the stored output
    hooks = [
        m.register_forward_hook(lambda m, _i, y, n=n: out[n].append(y.detach().clone())) for n, m in layers.items()
    ]
    with torch.no_grad():
        for images, _ in data:
            p.masked(images)
    for h in hooks:
        h.remove()
    errors = {}
    for n, layer in layers.items():
        bias = layer.bias.detach() if layer.bias is not None else 0.0
        got = torch.cat([layer_rows(layer, y, pos) - bias for y, pos in zip(out[n], cap.targets[n].pos, strict=True)])
        want = torch.cat(cap.targets[n].Y)
        errors[n] = float(((got - want) ** 2).sum() / (want**2).sum())
    return errors
