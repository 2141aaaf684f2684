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
from torch import nn

from cplitool.toolchain.counting import count_model
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.dry_run import check_plan
from cplitool.toolchain.prune.groups import Group, find_groups
from cplitool.toolchain.recipe.sections import PruneSection

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TOLERANCE = 0.02  # relative: |achieved - target| <= 2% of the target
BLOCKS_HINT = "; prune.scope = 'all' also prunes residual streams, depthwise/grouped convs and concatenations"


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
    scope: str = "blocks"
    groups: list[Group] = field(default_factory=list)  # scope "all": the prunable coupled groups

    @property
    def macs_keep(self) -> float:
        return self.macs_after / self.macs_before

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_keep"] = self.macs_keep
        d["groups"] = [g.summary() for g in self.groups]  # member index lists would bloat the artifact
        return d


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


Unit = Any  # a Stage or a Group: .channels and .keep


class MacsModel:
    """MACs after pruning as a function of the widths of `units` (stages or groups): a conv's MACs scale with
    the kept fraction of its inputs times that of its outputs, where each fraction adds up the parts of the
    layer's channels each unit covers (a concatenation's reader is covered by several groups); a depthwise
    conv's scale with its kept channels alone. Everything else is unchanged. Vectorised, because the
    width search calls it thousands of times."""

    def __init__(
        self,
        units: list[Unit],
        layer_macs: dict[str, int],
        total: int,
        cover_in: dict[str, dict[int, float]],
        cover_out: dict[str, dict[int, float]],
    ) -> None:
        self.units, self.total = units, total
        self.macs = np.array(list(layer_macs.values()), dtype=np.float64)
        shape = (len(layer_macs), len(units))
        self.f_in, self.f_out = np.zeros(shape), np.zeros(shape)
        self.c_in, self.c_out = np.ones(len(layer_macs)), np.ones(len(layer_macs))
        for li, name in enumerate(layer_macs):
            for cover, f, c in ((cover_in, self.f_in, self.c_in), (cover_out, self.f_out, self.c_out)):
                for u, frac in cover.get(name, {}).items():
                    f[li, u] += frac
                    c[li] -= frac
        self.channels = np.array([u.channels for u in units], dtype=np.float64)

    @classmethod
    def of_stages(cls, stages: list[Stage], layer_macs: dict[str, int], total: int) -> MacsModel:
        cover_in = {s.consumer: {i: 1.0} for i, s in enumerate(stages)}
        cover_out = {s.producer: {i: 1.0} for i, s in enumerate(stages)}
        return cls(stages, layer_macs, total, cover_in, cover_out)

    def __call__(self) -> int:
        keep = np.array([u.keep for u in self.units], dtype=np.float64) / self.channels
        kept_in = self.f_in @ keep + self.c_in
        kept_out = self.f_out @ keep + self.c_out
        return round(self.total - float((self.macs * (1 - kept_in * kept_out)).sum()))


def _step(unit: Unit, round_to: int) -> int:
    return int(unit.step) if isinstance(unit, Group) else min(round_to, unit.channels)


def _producers(unit: Unit) -> list[str]:
    return [m.name for m in unit.producers] if isinstance(unit, Group) else [unit.producer]


def _check_names(cfg: PruneSection, units: list[Unit], convs: set[str]) -> None:
    prunable = {p for u in units for p in _producers(u)}
    for key, names in (("prune.skip", cfg.skip), ("prune.layer_keep", list(cfg.layer_keep))):
        for n in names:
            if n not in convs:
                raise UsageError(
                    f"{key}: {n!r} is not a conv layer of the model; prunable: {', '.join(sorted(prunable))}"
                )
            if n not in prunable:
                where = (
                    "a coupled group that cannot be removed exactly"
                    if cfg.scope == "all"
                    else "a residual add, a concat or the classifier"
                )
                raise UsageError(
                    f"{key}: {n!r} cannot be pruned (its outputs feed {where}); prunable: {', '.join(sorted(prunable))}"
                )
    for n, r in cfg.layer_keep.items():
        if not 0.0 < r <= 1.0:
            raise UsageError(f"prune.layer_keep: {n!r} = {r}: expected a keep ratio in (0, 1]")


def _set_widths(free: list[Unit], ratio: float, round_to: int) -> None:
    for u in free:
        u.keep = round_width(u.channels, ratio, _step(u, round_to))


def _nudge(free: list[Unit], cost: MacsModel, target_macs: float, round_to: int) -> None:
    """Move single units by one rounding step while that brings the MACs closer to the target."""
    while True:
        best, best_gap = None, abs(cost() - target_macs)
        for u in free:
            step = _step(u, round_to)
            for new in (u.keep - step, u.keep + step):
                if step <= new <= u.channels:
                    old, u.keep = u.keep, new
                    gap = abs(cost() - target_macs)
                    u.keep = old
                    if gap < best_gap - 1e-9:
                        best, best_gap = (u, new), gap
        if best is None:
            return
        best[0].keep = best[1]


def _group_cover(
    model: nn.Module, groups: list[Group]
) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """The fraction of each layer's inputs and outputs that each group's channels are."""
    cover_in: dict[str, dict[int, float]] = {}
    cover_out: dict[str, dict[int, float]] = {}
    for gi, g in enumerate(groups):
        for m in g.members:
            layer: Any = model.get_submodule(m.name)
            linear = isinstance(layer, nn.Linear)
            size = (layer.in_features if linear else layer.in_channels) if m.side == "in" else layer.weight.shape[0]
            cover = cover_in if m.side == "in" else cover_out
            part = cover.setdefault(m.name, {})
            part[gi] = part.get(gi, 0.0) + len(m.idxs) / size
    return cover_in, cover_out


def _blocking(groups: list[Group], cover: tuple[dict[str, dict[int, float]], ...], layer_macs: dict[str, int]) -> str:
    """The refused group whose layers carry the most MACs, for the refusal message."""
    best, best_macs = None, -1.0
    for gi, g in enumerate(groups):
        if g.refused is None:
            continue
        macs = sum(layer_macs.get(n, 0) * part.get(gi, 0.0) for c in cover for n, part in c.items())
        if macs > best_macs:
            best, best_macs = g, macs
    if best is None:
        return ""
    return f"; the largest part kept whole is group {best.root!r} ({best.refused})"


def make_plan(model: nn.Module, input_shape: tuple[int, ...], cfg: PruneSection, dg: Any | None = None) -> PrunePlan:
    """Stages (scope blocks) or groups (scope all) and widths meeting cfg.macs_keep within 2%; a usage error
    when that is impossible."""
    dg = dg if dg is not None else graph(model, input_shape)
    convs = {n for n, m in model.named_modules() if isinstance(m, (*CONVS, nn.Linear))}
    count = count_model(model, input_shape)
    layer_macs = {lc.name: lc.macs for lc in count.layers}
    total = count.macs
    stages: list[Stage] = []
    groups: list[Group] = []
    blocking = ""
    if cfg.scope == "all":
        found = find_groups(model, dg, cfg.round_to)
        cover = _group_cover(model, found)
        blocking = _blocking(found, cover, layer_macs)
        usable = [g.refused is None for g in found]
        groups = [g for g, ok in zip(found, usable, strict=True) if ok]
        index = {gi: i for i, gi in enumerate(gi for gi, ok in enumerate(usable) if ok)}
        cover_in, cover_out = (
            {n: {index[g]: f for g, f in part.items() if g in index} for n, part in c.items()} for c in cover
        )
        units: list[Unit] = list(groups)
        cost_of = lambda kept: MacsModel(kept, layer_macs, total, cover_in, cover_out)  # noqa: E731
    else:
        stages = find_stages(model, dg)
        units = list(stages)
        cost_of = lambda kept: MacsModel.of_stages(kept, layer_macs, total)  # noqa: E731
    if not units:
        raise UsageError(
            f"nothing to prune in {type(model).__name__}: no conv feeds exactly one other conv through "
            "channel-wise ops (block outputs, concatenations and the classifier's input are kept)"
            + (BLOCKS_HINT if cfg.scope == "blocks" else blocking)
        )
    _check_names(
        cfg, units, convs if cfg.scope == "all" else {n for n in convs if isinstance(model.get_submodule(n), CONVS)}
    )
    skipped = {id(u) for u in units if set(_producers(u)) & set(cfg.skip)}
    for u in units:
        fixed = [cfg.layer_keep[p] for p in _producers(u) if p in cfg.layer_keep]
        if id(u) in skipped:
            u.keep = u.channels
        elif fixed:
            u.keep = round_width(u.channels, fixed[0], _step(u, cfg.round_to))
    free = [u for u in units if id(u) not in skipped and not set(_producers(u)) & set(cfg.layer_keep)]
    target = cfg.macs_keep * total

    cost = cost_of(units)  # every unit, skipped ones whole: the cover's indices are the units'
    units = [u for u in units if id(u) not in skipped]
    _set_widths(free, 0.0, cfg.round_to)
    floor = cost()
    if floor > target * (1 + TOLERANCE):
        raise UsageError(
            f"prune.macs_keep = {cfg.macs_keep}: cannot be met; with every prunable layer at its minimum width "
            f"(round_to = {cfg.round_to}) the model keeps {floor / total:.1%} of its MACs "
            f"({len(free)} free {'groups' if cfg.scope == 'all' else 'layers'}, {len(cfg.skip)} skipped, "
            f"{len(cfg.layer_keep)} fixed by prune.layer_keep){blocking or BLOCKS_HINT * (cfg.scope == 'blocks')}"
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
            f"2% off; lower prune.round_to (now {cfg.round_to}) or change prune.layer_keep{blocking}"
        )
    stages = [u for u in units if isinstance(u, Stage)]
    groups = [u for u in units if isinstance(u, Group)]
    if groups:
        check_plan(model, tuple(input_shape), groups)  # blocks whose code fixes a width fail here, before sampling
    return PrunePlan(tuple(input_shape), cfg.macs_keep, stages, total, achieved, hi, layer_macs, cfg.scope, groups)
