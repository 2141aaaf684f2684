"""Coupled channel groups (prune.scope = "all"): every set of channels Torch-Pruning's dependency graph ties
together, with the roles the pruner needs.

A group is one index space of `channels` root channels. Removing root channel r removes, in every member,
the channel(s) the graph maps r to: output filters of the producers (convs/linears writing the channels,
e.g. every conv feeding a residual add), input channels of the consumers (dense convs/linears reading
them, after any concatenation offset or flatten), and the channel of every pass-through layer (BatchNorm,
depthwise conv, activations, pooling, squeeze-and-excitation scaling). Grouped convs tie root channels
together: the same position is kept or removed in every one of their groups, so the conv stays valid.
Groups that cannot be removed exactly are refused with a reason (LayerNorm mixes channels, a channel
shuffle permutes them, the channels are the network's output, ...).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np
from torch import nn

from cplitool.toolchain.errors import UsageError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
WEIGHTED = (*CONVS, nn.Linear)
# Torch-Pruning's group search revisits a node once per distinct index set that reaches it; where slices
# and adds re-mix channel ranges (ReXNet's partial residuals) that never settles. A group touches each of
# the graph's nodes a few times at most, so more items than this per node stops the search.
ITEMS_PER_NODE = 8
GROUPS_BUDGET_S = 90.0  # the whole group search; then a refusal naming the module it was at
PERMUTES = ("Permute", "Transpose")  # grad_fn names of ops that move channels to other positions
PADS = ("ConstantPad", "Pad")  # a zero-padding shortcut adds channels the graph does not index


@dataclass
class Member:
    """One conv/linear touched by a group: which of its channels (`idxs`, on side "in" or "out") are the
    group's root channels `roots` (same order)."""

    name: str
    side: str  # "out": the layer's output channels; "in": its input channels (features for a linear)
    idxs: list[int]
    roots: list[int]
    groups: int = 1  # conv groups; depthwise convs are pass-through members on side "out"
    depthwise: bool = False
    per_group: int = 0  # grouped (not depthwise) convs: channels per conv group on this side


@dataclass
class Group:
    """One coupled channel group and its width."""

    root: str  # the layer whose output channels index the group
    channels: int
    keep: int = 0
    step: int = 1  # kept channels are a multiple of this (round_to, and the tie size of grouped convs)
    members: list[Member] = field(default_factory=list)
    ties: list[list[int]] = field(default_factory=list)  # root channels kept or removed together
    refused: str | None = None  # why the group is never pruned

    @property
    def producers(self) -> list[Member]:
        return [m for m in self.members if m.side == "out" and not m.depthwise]

    @property
    def consumers(self) -> list[Member]:
        """Dense readers of the group: what cpli/cp reconstruct (grouped convs cannot be reconstructed)."""
        return [m for m in self.members if m.side == "in" and m.groups == 1]

    @property
    def reconstructable(self) -> bool:
        return bool(self.consumers)

    @property
    def keep_ratio(self) -> float:
        return self.keep / self.channels

    def summary(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "channels": self.channels,
            "keep": self.keep,
            "step": self.step,
            "producers": [m.name for m in self.producers],
            "consumers": [m.name for m in self.consumers],
            "members": sorted({m.name for m in self.members}),
        }

    def tie_size(self) -> int:
        return len(self.ties[0]) if self.ties else 1

    def roots_of(self, classes: np.ndarray) -> np.ndarray:
        """Root channels of the kept tie classes, sorted."""
        return np.sort(np.concatenate([self.ties[int(c)] for c in classes]).astype(np.int64))


def _handler_side(dg: Any, handler: Any) -> str | None:
    if dg.is_out_channel_pruning_fn(handler):
        return "out"
    if dg.is_in_channel_pruning_fn(handler):
        return "in"
    return None


def _refusal(module: Any, names: dict[Any, str]) -> str | None:
    """Why a non-conv/linear group item makes exact removal impossible, or None when it is channel-wise."""
    import torch_pruning as tp

    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return None
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or type(module).__name__.startswith("LayerNorm"):
        return f"{names.get(module, type(module).__name__)} normalises across channels"
    if isinstance(module, nn.Parameter):
        return "a bare nn.Parameter (e.g. a layer scale) would need its own surgery"
    if isinstance(module, tp.ops._ElementWiseOp):
        name = str(module._grad_fn)
        if any(p in name for p in PERMUTES):
            return f"a {name} reorders axes, and channels are not followed through it"
        if any(p in name for p in PADS):
            return f"a {name} may pad channels (a zero-padding shortcut), which are not followed through it"
        return None
    if isinstance(module, (tp.ops._ReshapeOp, tp.ops._ConcatOp, tp.ops._SplitOp, tp.ops._SliceOp)):
        return None
    if isinstance(module, (nn.PReLU,)):
        return None
    return f"{type(module).__name__} {names.get(module, '')} is not a layer the pruner can follow".replace("  ", " ")


def _ties(channels: int, members: list[Member]) -> list[list[int]] | str:
    """Union of root channels that grouped convs require to be kept together (same position in every conv
    group); a reason string when the classes come out uneven."""
    parent = list(range(channels))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for m in members:
        if not m.per_group or m.depthwise:
            continue
        first: dict[int, int] = {}
        for idx, root in zip(m.idxs, m.roots, strict=True):
            pos = idx % m.per_group
            if pos in first:
                parent[find(root)] = find(first[pos])
            else:
                first[pos] = root
    classes: dict[int, list[int]] = {}
    for r in range(channels):
        classes.setdefault(find(r), []).append(r)
    ties = list(classes.values())
    if len({len(t) for t in ties}) > 1:
        return "grouped convs tie its channels into classes of unequal size"
    return ties


def step_for(channels: int, tie: int, round_to: int) -> int:
    """Kept channels are multiples of this: round_to (at most the width), made a multiple of the tie size;
    the tie size alone when that would leave fewer than two choices."""
    base = min(round_to, channels)
    both = base * tie // gcd(base, tie)
    return both if both <= channels // 2 else tie


class GroupSearchTooLarge(Exception):
    """Torch-Pruning's search for one group's dependencies grew past its bound."""


@contextmanager
def bounded_group_search(limit: int) -> Iterator[None]:
    """Make Torch-Pruning's group search raise GroupSearchTooLarge once a group holds `limit` items."""
    from torch_pruning.dependency.group import Group as TPGroup

    original = TPGroup.add_dep

    def add_dep(self: Any, dep: Any, idxs: Any) -> None:
        if len(self.items) >= limit:
            raise GroupSearchTooLarge
        original(self, dep, idxs)

    TPGroup.add_dep = add_dep
    try:
        yield
    finally:
        TPGroup.add_dep = original


def _tp_group(dg: Any, module: Any, channels: int) -> Any:
    return dg.get_pruning_group(module, dg.get_pruner_of_module(module).prune_out_channels, list(range(channels)))


def find_groups(model: nn.Module, dg: Any, round_to: int, budget_s: float = GROUPS_BUDGET_S) -> list[Group]:
    """Every channel group of `model` rooted at a conv/linear's outputs, refused ones included, each once.
    A group whose search does not settle is refused; past `budget_s` in all, a usage error names the module."""
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    seen: set[Any] = set()
    failed: dict[str, str] = {}
    groups: list[Group] = []
    start = time.perf_counter()
    with bounded_group_search(ITEMS_PER_NODE * len(dg.module2node)):
        for module in list(dg.module2node):
            if not isinstance(module, WEIGHTED) or module in seen or module not in names:
                continue
            if time.perf_counter() - start > budget_s:
                raise UsageError(
                    f"prune.scope = 'all': finding the coupled channel groups of {type(model).__name__} ran past "
                    f"{budget_s:.0f} s (at {names[module]}); prune.scope = 'blocks' prunes inside blocks only"
                )
            channels = dg.get_pruner_of_module(module).get_out_channels(module)
            try:
                tp_group = _tp_group(dg, module, channels)
            except Exception as e:  # Torch-Pruning cannot map the indices (a channel shuffle's reshape, ...)
                failed[names[module]] = (
                    "Torch-Pruning's search for the layers its channels reach does not settle (more than "
                    f"{ITEMS_PER_NODE} items per graph node)"
                    if isinstance(e, GroupSearchTooLarge)
                    else f"Torch-Pruning cannot map its channels ({type(e).__name__})"
                )
                seen.add(module)
                groups.append(Group(names[module], channels, channels, refused=failed[names[module]]))
                continue
            group = _group(names[module], channels, tp_group, dg, names, seen, round_to)
            first = _earliest_producer(group, channels, order)
            if first is not None and first != group.root:  # name groups by their shallowest producer
                group = _group(
                    first, channels, _tp_group(dg, model.get_submodule(first), channels), dg, names, seen, round_to
                )
            groups.append(group)
    _refuse_overlaps(groups)
    for g in groups:  # a group touching a layer whose own group could not be mapped is not trusted either
        if g.refused is None and any(m.side == "out" and m.name in failed for m in g.members):
            g.refused = (
                f"it shares layers with a group that {failed[next(m.name for m in g.members if m.name in failed)]}"
            )
    return groups


def _refuse_overlaps(groups: list[Group]) -> None:
    """Refuse a group whose output channels Torch-Pruning also puts in an earlier group (a split or chunk it
    maps twice): removing both would remove a channel twice, and the MACs estimate would count it twice."""
    owner: dict[tuple[str, int], str] = {}
    for g in groups:
        if g.refused is not None:
            continue
        outs = {(m.name, i) for m in g.members if m.side == "out" for i in m.idxs}
        other = next((owner[k] for k in outs if k in owner), None)
        if other is not None:
            g.refused = f"Torch-Pruning puts some of its channels in group {other!r} too"
        else:
            owner.update(dict.fromkeys(outs, g.root))


def _earliest_producer(group: Group, channels: int, order: dict[str, int]) -> str | None:
    full = [m.name for m in group.producers if sorted(m.roots) == list(range(channels)) and m.idxs == m.roots]
    return min(full, key=order.__getitem__) if full else None


def width(layer: Any, side: str) -> int:
    """The layer's channels (features) on `side`."""
    if side == "out":
        return int(layer.weight.shape[0])
    return int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)


def _group(
    root: str, channels: int, tp_group: Any, dg: Any, names: dict[Any, str], seen: set[Any], round_to: int
) -> Group:
    group = Group(root, channels, channels)
    reasons = []
    for item in tp_group.items:
        target, handler = item.dep.target.module, item.dep.handler
        side = _handler_side(dg, handler)
        if side == "out":
            seen.add(target)
        if isinstance(target, WEIGHTED) and target in names and side is not None:
            groups = int(getattr(target, "groups", 1))
            depthwise = isinstance(target, CONVS) and groups > 1 and groups == target.in_channels == target.out_channels
            per = 0
            if groups > 1:  # only convs have groups; Linear has neither groups nor in/out_channels
                per = int(target.in_channels if side == "in" else target.out_channels) // groups  # type: ignore[arg-type]
            member = Member(names[target], side, list(item.idxs), list(item.root_idxs), groups, depthwise, per)
            group.members.append(member)
            size = width(target, side)
            if any(not 0 <= i < size for i in member.idxs) or any(not 0 <= r < channels for r in member.roots):
                reasons.append(f"Torch-Pruning maps its channels outside {member.name}'s {size} {side}puts")
        else:
            reason = _refusal(target, names)
            if reason:
                reasons.append(reason)
    if not any(m.side == "in" for m in group.members):
        reasons.append("its channels are the network's output")
    if channels < 2:
        reasons.append("it has a single channel")
    ties = _ties(channels, group.members)
    if isinstance(ties, str):
        reasons.append(ties)
    else:
        group.ties = ties
        group.step = step_for(channels, len(ties[0]), round_to)
    reasons.sort(key=lambda r: "normalises" not in r)  # the most telling reason first
    group.refused = reasons[0] if reasons else None
    return group
