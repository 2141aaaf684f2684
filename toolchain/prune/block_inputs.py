"""Consumer inputs for prune.scope = "all" without re-running the network from its input for every group.

Groups are chosen shallow to deep on a model that keeps its shape; choosing one changes only the weights of its
input-side members. So the sampled images' activations entering a block of a plain nn.Sequential (a ResNet
stage, the `features` of MobileNet, EfficientNet, ConvNeXt) stay valid while no module that runs before that
block changes, and a group whose consumers all sit in that Sequential from block i on needs only blocks i, i+1,
... run on them. The cache advances block by block as the groups go deeper; a group that changed a module
before the cached block, or whose consumers have no such Sequential in common, re-runs the prefix as before.

Memory bound: the kept activations are float32 on the sampling device, at most CACHE_BYTES (chain.py's bound);
past it the prefix is re-run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from cplitool.toolchain.prune.chain import CACHE_BYTES
from cplitool.toolchain.prune.sampling import PreHook, Stop, prefix_inputs, probe_pass

Forward = Callable[[int], None]  # runs batch i far enough for every consumer's pre-hook to fire


@dataclass(frozen=True)
class Cut:
    """Block `index` of the plain Sequential `seq` (named `name`): where a group's consumers start."""

    name: str
    seq: nn.Sequential
    index: int

    @property
    def block(self) -> str:
        return f"{self.name}.{self.index}" if self.name else str(self.index)


def plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def cut_for(model: nn.Module, consumers: list[str]) -> Cut | None:
    """The outermost plain Sequential that holds every consumer inside its blocks, and the first block with one;
    None when there is none (the consumers span blocks of different Sequentials, or none holds them)."""
    parts = [name.split(".") for name in consumers]
    for depth in range(min(len(p) for p in parts) - 1):  # outermost first; the consumer itself is not a block
        prefix = parts[0][:depth]
        if any(p[:depth] != prefix for p in parts):
            return None
        name = ".".join(prefix)
        seq = model.get_submodule(name)
        if plain_sequential(seq):
            index = {child: i for i, (child, _) in enumerate(seq.named_children())}
            return Cut(name, seq, min(index[p[depth]] for p in parts))  # type: ignore[arg-type]
    return None


def execution_order(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> dict[str, int]:
    """Module name -> the position of its first call in one forward pass (modules never called: absent)."""
    order: dict[str, int] = {}

    def seen(name: str) -> PreHook:
        def hook(_module: nn.Module, _inputs: tuple[torch.Tensor, ...]) -> None:
            order.setdefault(name, len(order))

        return hook

    probe_pass(model, {m: seen(name) for name, m in model.named_modules()}, input_shape, device)
    return order


class BlockInputs:
    """The sampled images' activations entering one block of a Sequential, in the model as changed so far."""

    def __init__(
        self,
        model: nn.Module,
        loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
        input_shape: tuple[int, ...],
        device: torch.device,
    ) -> None:
        self.model, self.loader, self.device = model, loader, device
        self.order = execution_order(model, input_shape, device)
        self.cut: Cut | None = None
        self.acts: list[torch.Tensor] = []
        self.changed_at = len(self.order)  # earliest position changed since the activations were taken

    def changed(self, names: Iterable[str]) -> None:
        """Modules whose weights a group changed: activations entering blocks after them go stale."""
        self.changed_at = min([self.changed_at, *(self.order.get(n, len(self.order)) for n in names)])

    def forward(self, consumers: list[str]) -> tuple[Forward | None, float]:
        """(how to run batch i up to the consumers, seconds spent bringing the activations to their block); None:
        run the network from its input (no common Sequential, or activations over CACHE_BYTES)."""
        cut = cut_for(self.model, consumers)
        if cut is None:
            return None, 0.0
        start = time.perf_counter()
        if not self.advance(cut) and not self.take(cut):
            return None, time.perf_counter() - start

        def run(i: int) -> None:
            x = self.acts[i]
            with torch.no_grad(), contextlib.suppress(Stop):  # the consumers' pre-hooks stop the pass
                for block in list(cut.seq)[cut.index :]:
                    x = block(x)

        return run, time.perf_counter() - start

    def valid_for(self, cut: Cut) -> bool:
        current = self.cut
        return (
            current is not None
            and current.seq is cut.seq
            and current.index <= cut.index
            and current.block in self.order
            and self.changed_at >= self.order[current.block]
        )

    def advance(self, cut: Cut) -> bool:
        """Move the kept activations from their block to `cut`'s through the blocks between (as they are now)."""
        if not self.valid_for(cut):
            return False
        assert self.cut is not None
        blocks = list(cut.seq)[self.cut.index : cut.index]
        with torch.no_grad():
            for j, x in enumerate(self.acts):
                for block in blocks:
                    x = block(x)
                self.acts[j] = x
        self.cut, self.changed_at = cut, len(self.order)  # blocks before it ran as they are now
        return True

    def take(self, cut: Cut) -> bool:
        """The activations entering `cut`'s block from a pass of the network from its input; False (and none kept)
        when they would exceed CACHE_BYTES."""
        self.cut, self.acts, self.changed_at = None, [], len(self.order)
        acts, size = [], 0
        with contextlib.closing(prefix_inputs(self.model, cut.block, self.loader, self.device)) as inputs:
            for x in inputs:
                size += x.numel() * 4
                if size > CACHE_BYTES:
                    return False
                acts.append(x.float())
        self.cut, self.acts = cut, acts
        return True
