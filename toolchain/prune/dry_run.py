"""A structural dry run of a scope "all" plan: remove every group's planned number of channels from a copy,
check every layer's width against the plan's and run one forward, before any data is touched.

Torch-Pruning edits convs, norms and linears, but not a module's own code: a block that slices, splits or
chunks by a width stored at construction (timm's GhostModule, MixedConv2d, Res2Net and CSP blocks) breaks
once its inputs shrink. Such a block is found by the module the forward fails in (the innermost one that
is not a torch.nn built-in and holds group members), its groups are left whole, and the run is repeated;
the usage error then names every such block and the prune.skip list with which the rest passed. A layer
left at another width than planned (Torch-Pruning mapping channels through a stale concat or slice offset,
GhostNet) is treated the same way: its MACs estimate would be wrong.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.groups import Group, width

MAX_ROUNDS = 64  # blocks left whole before giving up (each round is one surgery of a copy)


def forward_failure(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[str], str] | None:
    """None when a zero input goes through `model`; else the names of the modules being run when it failed
    (outermost first) and the error in one line."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def enter(m: nn.Module, _: Any) -> None:
        if m in names:
            stack.append(names[m])

    def leave(m: nn.Module, _i: Any, _o: Any) -> None:
        if m in names:
            stack.pop()

    handles = [
        torch.nn.modules.module.register_module_forward_pre_hook(enter),
        torch.nn.modules.module.register_module_forward_hook(leave),
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    except Exception as e:
        return list(stack), f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        for h in handles:
            h.remove()
    return None


def blamed(model: nn.Module, stack: list[str], groups: list[Group]) -> tuple[str, list[Group]]:
    """The innermost running module whose subtree holds members of `groups`, and those groups: one with its
    own code (outside torch.nn) first, a torch.nn layer when no such module holds any."""
    for builtin in (False, True):
        for name in reversed(stack[1:]):  # stack[0] is the model itself
            if type(model.get_submodule(name)).__module__.startswith("torch.nn") != builtin:
                continue
            inside = [g for g in groups if any(m.name == name or m.name.startswith(f"{name}.") for m in g.members)]
            if inside:
                return name, inside
    return "", []


def dropped_roots(group: Group) -> list[int]:
    """The root channels the dry run removes: the last tie classes (how many the plan drops matters here,
    not which)."""
    return sorted(r for t in group.ties[group.keep // group.tie_size() :] for r in t)


def remove_planned(model: nn.Module, input_shape: tuple[int, ...], groups: list[Group]) -> None:
    dg = graph(model, input_shape)
    for g in groups:
        if g.keep < g.channels:
            root: Any = model.get_submodule(g.root)
            pruning = dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, dropped_roots(g))
            pruning.prune()


def planned_widths(model: nn.Module, groups: list[Group]) -> dict[tuple[str, str], int]:
    """(layer, side) -> the channels the plan leaves there: what the MACs estimate assumes."""
    drop: dict[tuple[str, str], set[int]] = {}
    for g in groups:
        gone = set(dropped_roots(g)) if g.keep < g.channels else set()
        for m in g.members:
            drop.setdefault((m.name, m.side), set()).update(
                i for i, r in zip(m.idxs, m.roots, strict=True) if r in gone
            )
    return {(n, s): width(model.get_submodule(n), s) - len(d) for (n, s), d in drop.items()}


def width_mismatch(work: nn.Module, planned: dict[tuple[str, str], int]) -> tuple[str, str] | None:
    """The first layer whose width after the surgery is not the plan's (Torch-Pruning mapped a channel
    twice or to a stale offset), with the error in one line."""
    for (name, side), want in planned.items():
        got = width(work.get_submodule(name), side)
        if got != want:
            return name, f"{side}put channels {got} after removal, the plan expects {want}"
    return None


def skip_entry(group: Group) -> str:
    """The prune.skip name that leaves `group` whole: one of its producers."""
    return group.producers[0].name if group.producers else group.root


def check_plan(model: nn.Module, input_shape: tuple[int, ...], groups: list[Group]) -> None:
    """A usage error naming the blocks that break when their inputs shrink, with the prune.skip list that lets
    the rest prune (checked: the dry run passes with it); nothing when the plan runs."""
    live, broken, skip = list(groups), [], []
    for _ in range(MAX_ROUNDS):
        work = copy.deepcopy(model).eval()
        remove_planned(work, input_shape, live)
        failure = forward_failure(work, input_shape)
        if failure is None:
            mismatch = width_mismatch(work, planned_widths(model, live))
            if mismatch is None:
                break
            name, error = mismatch
            inside = [g for g in live if any(m.name == name for m in g.members)]
        else:
            stack, error = failure
            name, inside = blamed(work, stack, live)
            if not name:
                raise UsageError(
                    f"prune.scope = 'all': {type(model).__name__} fails once its channels are removed ({error}, "
                    f"in {stack[-1] if stack and stack[-1] else 'its forward'}); "
                    "prune.scope = 'blocks' prunes inside blocks only"
                )
        broken.append(f"{name} ({type(model.get_submodule(name)).__name__}: {error})")
        skip += [skip_entry(g) for g in inside]
        live = [g for g in live if all(g is not i for i in inside)]
    else:
        raise UsageError(f"prune.scope = 'all': more than {MAX_ROUNDS} blocks of {type(model).__name__} break")
    if broken:
        more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
        raise UsageError(
            f"prune.scope = 'all': {broken[0]}{more} cannot be pruned (its code fixes a width, or Torch-Pruning maps its "
            "channels wrongly); "
            f"prune.skip = {sorted(set(skip))!r} keeps {'them' if more else 'it'} whole and lets the rest prune"
        )
