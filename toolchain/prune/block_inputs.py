"""Consumer inputs for prune.scope = "all" without re-running the network from its input for every group.

Most networks run as a chain of blocks: the model's forward calls its children one on the other's output (seen
in one probe pass), and a plain nn.Sequential among them (a ResNet stage, the `features` of MobileNet,
EfficientNet, ConvNeXt) is a chain of its own children. Groups are chosen shallow to deep on a model that keeps
its shape, and choosing one changes only the weights of its input-side members. So the sampled images'
activations entering a block stay valid while no module that runs before that block changes, and a group whose
consumers all sit in blocks i, i+1, ... needs only those blocks run on them. The kept activations advance block
by block as the groups go deeper; after a group that changed a module before them, or for consumers past the
chain (a classifier after a flatten), the prefix is re-run from the input as before. (Masking alone would leave
the kept values on the masked channels stale but unread, except through something like a LayerNorm across
channels; re-running keeps this path identical to the one from the input, whatever the layers.)

Memory bound: the kept activations are float32 on the sampling device, at most CACHE_BYTES (chain.py's bound);
past it the prefix is re-run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sized
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.progress import task
from cplitool.toolchain.prune.chain import CACHE_BYTES
from cplitool.toolchain.prune.sampling import PreHook, Stop, prefix_inputs, probe_pass

Forward = Callable[[int], None]  # runs batch i far enough for every consumer's pre-hook to fire


def plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def top_chain(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> list[str]:
    """The model's direct children that its forward calls as a chain, in call order: the first on the model's
    input, each next one on the previous one's output alone (the same tensor, not changed in place since), each
    once. Seen in one pass of a zero image; the chain ends where that stops holding (ResNet: at avgpool, since
    fc reads a flattened copy)."""
    if plain_sequential(model):
        return [name for name, _ in model.named_children()]
    calls: list[tuple[str, Any, int, bool]] = []  # child, its input, that input's version, called with it alone
    outputs: dict[str, tuple[Any, int]] = {}
    handles = []
    for name, child in model.named_children():

        def pre(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name) -> None:
            x = args[0] if args else None
            calls.append((name, x, getattr(x, "_version", -1), len(args) == 1 and not kwargs))

        def post(_m: nn.Module, _args: tuple[Any, ...], out: Any, name: str = name) -> None:
            outputs.setdefault(name, (out, getattr(out, "_version", -1)))

        handles += [child.register_forward_pre_hook(pre, with_kwargs=True), child.register_forward_hook(post)]
    x = torch.zeros(1, *input_shape, device=device)
    try:
        with torch.no_grad():
            model.eval().to(device)(x)
    finally:
        for h in handles:
            h.remove()
    chain: list[str] = []
    expected, version = x, x._version
    for name, inp, inp_version, alone in calls:
        if name in chain or not alone or inp is not expected or inp_version != version:
            break
        chain.append(name)
        expected, version = outputs[name]
    return chain


def chain_blocks(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> list[tuple[str, nn.Module]]:
    """The model's top chain with every plain Sequential in it opened up: blocks that each take the previous
    one's output, from the model's input on (a ResNet: conv1 ... maxpool, layer1.0, layer1.1, ..., layer4.2,
    avgpool; MobileNetV2: features.0.0, ..., features.18.2)."""

    def opened(name: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        if not plain_sequential(module):
            return [(name, module)]
        return [block for child, m in module.named_children() for block in opened(f"{name}.{child}", m)]

    return [
        block for name in top_chain(model, input_shape, device) for block in opened(name, model.get_submodule(name))
    ]


def cut_for(blocks: list[tuple[str, nn.Module]], consumers: list[str]) -> int | None:
    """The first block holding one of the consumers; None when one of them is in no block (after the chain)."""
    position = {name: i for i, (name, _) in enumerate(blocks)}
    holders = []
    for consumer in consumers:
        parts = consumer.split(".")
        owner = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in position), None)
        if owner is None:
            return None
        holders.append(position[owner])
    return min(holders)


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
    """The sampled images' activations entering one block of the model's chain, in the model as changed so far."""

    def __init__(
        self,
        model: nn.Module,
        loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
        input_shape: tuple[int, ...],
        device: torch.device,
    ) -> None:
        self.model, self.loader, self.device = model, loader, device
        self.order = execution_order(model, input_shape, device)
        self.blocks = chain_blocks(model, input_shape, device)
        self.at: int | None = None  # the block whose input the activations are
        self.acts: list[torch.Tensor] = []
        self.changed_at = len(self.order)  # earliest position changed since the activations were taken

    def changed(self, names: Iterable[str]) -> None:
        """Modules whose weights a group changed: activations entering blocks after them go stale."""
        self.changed_at = min([self.changed_at, *(self.order.get(n, len(self.order)) for n in names)])

    def forward(self, consumers: list[str]) -> tuple[Forward | None, float]:
        """(how to run batch i up to the consumers, seconds spent bringing the activations to their block); None:
        run the network from its input (a consumer after the chain, or activations over CACHE_BYTES)."""
        cut = cut_for(self.blocks, consumers)
        if cut is None:
            return None, 0.0
        start = time.perf_counter()
        if not self.advance(cut) and not self.take(cut):
            return None, time.perf_counter() - start
        blocks = [m for _, m in self.blocks[cut:]]

        def run(i: int) -> None:
            x = self.acts[i]
            with torch.no_grad(), contextlib.suppress(Stop):  # the consumers' pre-hooks stop the pass
                for block in blocks:
                    x = block(x)

        return run, time.perf_counter() - start

    def valid_for(self, cut: int) -> bool:
        """Whether the kept activations can be advanced to block `cut`: they enter it or an earlier block, and no
        module that runs before their block changed since."""
        if self.at is None or self.at > cut:
            return False
        name = self.blocks[self.at][0]
        return name in self.order and self.changed_at >= self.order[name]

    def advance(self, cut: int) -> bool:
        """Move the kept activations from their block to `cut` through the blocks between (as they are now)."""
        if not self.valid_for(cut):
            return False
        between = [m for _, m in self.blocks[self.at : cut]]
        with torch.no_grad(), task(f"advance to {self.blocks[cut][0]}", len(self.acts), "batch") as step:
            for j, x in enumerate(self.acts):
                for block in between:
                    x = block(x)
                self.acts[j] = x
                step()
        self.at, self.changed_at = cut, len(self.order)  # blocks before it ran as they are now
        return True

    def take(self, cut: int) -> bool:
        """The activations entering block `cut` from a pass of the network from its input; False (and none kept)
        when they would exceed CACHE_BYTES."""
        self.at, self.acts, self.changed_at = None, [], len(self.order)
        acts, size = [], 0
        name = self.blocks[cut][0]
        batches = len(self.loader) if isinstance(self.loader, Sized) else None
        with (
            contextlib.closing(prefix_inputs(self.model, name, self.loader, self.device)) as inputs,
            task(f"inputs of {name}", batches, "batch") as step,
        ):
            for x in inputs:
                size += x.numel() * 4
                if size > CACHE_BYTES:
                    return False
                acts.append(x.float())
                step()
        self.at, self.acts = cut, acts
        return True
