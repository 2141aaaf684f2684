"""Which channels may be pruned (stages) and how many each keeps (widths), before any data is touched.

A stage is a pair (producer conv, consumer conv): the producer's output channels are exactly the
consumer's input channels, with only BatchNorm and channel-wise ops (ReLU, pooling) between them, as
Torch-Pruning's dependency graph reports. Output channels that feed a residual add, a concat or a
flatten into a classifier are never pruned (CP, ThiNet and DCP prune inside blocks the same way).
Widths come from one uniform keep ratio searched by bisection so that the global MACs keep fraction
meets the target, then nudged one `round_to` step at a time when rounding leaves it off by more than
the tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from toolchain.counting import count_model
from toolchain.errors import UsageError
from toolchain.recipe.sections import PruneSection

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TOLERANCE = 0.02  # relative: |achieved - target| <= 2% of the target


@dataclass
class Stage:
    """One pruning stage: remove output channels of `producer` = input channels of `consumer`."""

    producer: str
    consumer: str
    channels: int  # producer's output channels before pruning
    keep: int = 0  # channels kept
    norm: str | None = None  # BatchNorm right after the producer, if any

    @property
    def keep_ratio(self) -> float:
        return self.keep / self.channels


@dataclass
class PrunePlan:
    """The stages with their widths and the MACs they give (per sample at `input_shape`)."""

    input_shape: tuple[int, ...]
    target: float
    stages: list[Stage]
    macs_before: int
    macs_after: int
    uniform_ratio: float
    layer_macs: dict[str, int] = field(default_factory=dict)  # dense MACs per conv/linear

    @property
    def macs_keep(self) -> float:
        return self.macs_after / self.macs_before

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_keep"] = self.macs_keep
        return d


def _guard_reshape_mapping() -> None:
    """Torch-Pruning 1.6 divides by a channel count it infers as 0 for a channel shuffle's reshape
    (ShuffleNet) and aborts the whole graph. Leave such a reshape without an index mapping instead: the
    groups through it are then refused (find_groups sees the transpose between its members)."""
    from torch_pruning.dependency import index_mapping

    original = index_mapping.update_reshape_index_mapping
    if getattr(original, "guarded", False):
        return

    def guarded(graph: Any, node: Any) -> None:
        try:
            original(graph, node)
        except ZeroDivisionError:
            return

    guarded.guarded = True  # type: ignore[attr-defined]
    index_mapping.update_reshape_index_mapping = guarded


def graph(model: nn.Module, input_shape: tuple[int, ...]) -> Any:
    """Torch-Pruning's dependency graph of `model`, traced with one zero input on the model's device."""
    import torch_pruning as tp

    _guard_reshape_mapping()

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return dg


def find_stages(model: nn.Module, dg: Any) -> list[Stage]:
    """Every group whose members are one producer conv's outputs, <= 1 BatchNorm, channel-wise ops and
    exactly one consumer conv's inputs. Groups are enumerated once each (a residual stream is one group)."""
    import torch_pruning as tp

    names = {m: n for n, m in model.named_modules()}
    stages = []
    for group in dg.get_all_groups(root_module_types=CONVS):
        producers, consumers, norms, ok = [], [], [], True
        for item in group.items:
            target, handler = item.dep.target.module, item.dep.handler
            if isinstance(target, CONVS) and target.groups == 1 and handler == tp.prune_conv_out_channels:
                producers.append(target)
            elif isinstance(target, CONVS) and target.groups == 1 and handler == tp.prune_conv_in_channels:
                consumers.append(target)
            elif isinstance(target, nn.modules.batchnorm._BatchNorm):
                norms.append(target)
            elif type(target).__name__ != "_ElementWiseOp":  # reshape, concat, split, linear, grouped conv
                ok = False
        if ok and len(producers) == len(consumers) == 1 and len(norms) <= 1 and producers[0].out_channels > 1:
            norm = names[norms[0]] if norms else None
            conv = producers[0]
            stages.append(Stage(names[conv], names[consumers[0]], conv.out_channels, conv.out_channels, norm))
    order = {n: i for i, n in enumerate(names.values())}
    return sorted(stages, key=lambda s: order[s.consumer])


def round_width(channels: int, ratio: float, round_to: int) -> int:
    """channels*ratio rounded to a multiple of round_to, at least one step, at most `channels`."""
    step = min(round_to, channels)
    return int(min(channels, max(step, round(channels * ratio / step) * step)))


class MacsModel:
    """MACs after pruning as a function of the stage widths: a conv's MACs scale with its kept inputs
    times its kept outputs; everything else is unchanged. Vectorised, because the width search calls it
    thousands of times."""

    def __init__(self, stages: list[Stage], layer_macs: dict[str, int], total: int) -> None:
        out_of = {s.producer: i for i, s in enumerate(stages)}
        in_of = {s.consumer: i for i, s in enumerate(stages)}
        none = len(stages)  # index of a constant 1.0
        self.stages, self.total = stages, total
        self.macs = np.array(list(layer_macs.values()), dtype=np.float64)
        self.out_idx = np.array([out_of.get(n, none) for n in layer_macs])
        self.in_idx = np.array([in_of.get(n, none) for n in layer_macs])
        self.channels = np.array([s.channels for s in stages] + [1], dtype=np.float64)

    def __call__(self) -> int:
        keep = np.array([s.keep for s in self.stages] + [1], dtype=np.float64) / self.channels
        return round(self.total - float((self.macs * (1 - keep[self.in_idx] * keep[self.out_idx])).sum()))


def _check_names(cfg: PruneSection, stages: list[Stage], convs: set[str]) -> None:
    prunable = {s.producer for s in stages}
    for key, names in (("prune.skip", cfg.skip), ("prune.layer_keep", list(cfg.layer_keep))):
        for n in names:
            if n not in convs:
                raise UsageError(
                    f"{key}: {n!r} is not a conv layer of the model; prunable: {', '.join(sorted(prunable))}"
                )
            if n not in prunable:
                raise UsageError(
                    f"{key}: {n!r} cannot be pruned (its outputs feed a residual add, a concat or the classifier); "
                    f"prunable: {', '.join(sorted(prunable))}"
                )
    for n, r in cfg.layer_keep.items():
        if not 0.0 < r <= 1.0:
            raise UsageError(f"prune.layer_keep: {n!r} = {r}: expected a keep ratio in (0, 1]")


def _set_widths(free: list[Stage], ratio: float, round_to: int) -> None:
    for s in free:
        s.keep = round_width(s.channels, ratio, round_to)


def _nudge(free: list[Stage], cost: MacsModel, target_macs: float, round_to: int) -> None:
    """Move single layers by one rounding step while that brings the MACs closer to the target."""
    while True:
        best, best_gap = None, abs(cost() - target_macs)
        for s in free:
            step = min(round_to, s.channels)
            for new in (s.keep - step, s.keep + step):
                if step <= new <= s.channels:
                    old, s.keep = s.keep, new
                    gap = abs(cost() - target_macs)
                    s.keep = old
                    if gap < best_gap - 1e-9:
                        best, best_gap = (s, new), gap
        if best is None:
            return
        best[0].keep = best[1]


def make_plan(model: nn.Module, input_shape: tuple[int, ...], cfg: PruneSection, dg: Any | None = None) -> PrunePlan:
    """Stages and widths meeting cfg.macs_keep within 2%; a usage error when that is impossible."""
    dg = dg if dg is not None else graph(model, input_shape)
    stages = find_stages(model, dg)
    convs = {n for n, m in model.named_modules() if isinstance(m, CONVS)}
    if not stages:
        raise UsageError(
            f"nothing to prune in {type(model).__name__}: no conv feeds exactly one other conv through "
            "channel-wise ops (block outputs, concatenations and the classifier's input are kept)"
        )
    _check_names(cfg, stages, convs)
    count = count_model(model, input_shape)
    layer_macs = {lc.name: lc.macs for lc in count.layers}
    total = count.macs
    stages = [s for s in stages if s.producer not in cfg.skip]
    for s in stages:
        if s.producer in cfg.layer_keep:
            s.keep = round_width(s.channels, cfg.layer_keep[s.producer], cfg.round_to)
    free = [s for s in stages if s.producer not in cfg.layer_keep]
    target = cfg.macs_keep * total

    cost = MacsModel(stages, layer_macs, total)
    _set_widths(free, 0.0, cfg.round_to)
    floor = cost()
    if floor > target * (1 + TOLERANCE):
        raise UsageError(
            f"prune.macs_keep = {cfg.macs_keep}: cannot be met; with every prunable layer at its minimum width "
            f"(round_to = {cfg.round_to}) the model keeps {floor / total:.1%} of its MACs "
            f"({len(free)} free layers, {len(cfg.skip)} skipped, {len(cfg.layer_keep)} fixed by prune.layer_keep)"
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):  # smallest uniform ratio whose MACs reach the target
        mid = (lo + hi) / 2
        _set_widths(free, mid, cfg.round_to)
        lo, hi = (lo, mid) if cost() >= target else (mid, hi)
    _set_widths(free, hi, cfg.round_to)
    if abs(cost() - target) > TOLERANCE * target:
        _nudge(free, cost, target, cfg.round_to)
    achieved = cost()
    if abs(achieved - target) > TOLERANCE * target:
        raise UsageError(
            f"prune.macs_keep = {cfg.macs_keep}: the closest plan keeps {achieved / total:.1%} of the MACs, more than "
            f"2% off; lower prune.round_to (now {cfg.round_to}) or change prune.layer_keep"
        )
    return PrunePlan(tuple(input_shape), cfg.macs_keep, stages, total, achieved, hi, layer_macs)
