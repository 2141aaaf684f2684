"""Consumer inputs for plain chains (one nn.Sequential) without re-running the network from its input.

In a chain, a stage's surgery changes only modules from its producer on. So the sampled images'
activations entering the current stage's producer are kept, and each stage runs just its own segment:
producer -> consumer for the stage's X, after advancing the kept activations from the previous producer
(whose surgery is done) to this one. Every module runs about twice in all, instead of once per stage.
Other graphs (residual networks) use sampling.prefix_inputs, which re-runs the network from the input.

Memory bound: the kept activations are float32 on the sampling device, at most
num_images x (largest per-image activation entering a producer) bytes x 4; when that exceeds
CACHE_BYTES the pruner falls back to prefix_inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from cplitool.toolchain.prune.plan import Stage
from cplitool.toolchain.prune.sampling import prefix_inputs, probe_pass

CACHE_BYTES = 4 * 2**30  # kept activations of the sampled images, float32


def _child(name: str) -> str:
    return name.rpartition(".")[2]


def _chain(model: nn.Module, stages: list[Stage]) -> tuple[nn.Sequential, dict[str, int]] | None:
    """(Sequential, child name -> index) when every stage's producer and consumer are children of one plain
    nn.Sequential, producers in order and each consumer after its producer; else None."""
    names = [n for s in stages for n in (s.producer, s.consumer)]
    parents = {n.rpartition(".")[0] for n in names}
    if len(parents) != 1:
        return None
    seq = model.get_submodule(parents.pop())
    if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
        return None
    index = {name: i for i, (name, _) in enumerate(seq.named_children())}
    pairs = [(index[_child(s.producer)], index[_child(s.consumer)]) for s in stages]
    producers = [p for p, _ in pairs]
    if producers != sorted(producers) or any(c <= p for p, c in pairs):
        return None
    return seq, index


def _run(seq: nn.Sequential, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
    for module in list(seq)[start:stop]:
        x = module(x)
    return x


class ChainInputs:
    """The sampled images' activations entering the current producer of a chain, advanced stage by stage."""

    def __init__(self, seq: nn.Sequential, index: dict[str, int], acts: list[torch.Tensor], at: int) -> None:
        self.seq, self.index, self.acts, self.at = seq, index, acts, at

    @classmethod
    def create(
        cls,
        model: nn.Module,
        stages: list[Stage],
        input_shape: tuple[int, ...],
        loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
        num_images: int,
        device: torch.device,
    ) -> ChainInputs | None:
        """Runs the network once up to the first producer; None when it is not a chain or the kept
        activations could exceed CACHE_BYTES."""
        found = _chain(model, stages) if stages else None
        if found is None:
            return None
        seq, index = found
        if num_images * 4 * _largest_input(model, stages, input_shape, device) > CACHE_BYTES:
            return None
        acts = [x.float() for x in prefix_inputs(model, stages[0].producer, loader, device)]
        return cls(seq, index, acts, index[_child(stages[0].producer)])

    def inputs(self, stage: Stage) -> Iterator[torch.Tensor]:
        """Per batch, the input of the stage's consumer in the network pruned so far (earlier stages done)."""
        producer, consumer = self.index[_child(stage.producer)], self.index[_child(stage.consumer)]
        self.seq.eval()
        with torch.no_grad():
            for j, h in enumerate(self.acts):
                h = _run(self.seq, self.at, producer, h)  # modules before this producer are final now
                self.acts[j] = h
                yield _run(self.seq, producer, consumer, h)
        self.at = producer


def _largest_input(model: nn.Module, stages: list[Stage], input_shape: tuple[int, ...], device: torch.device) -> int:
    """Elements per image of the largest activation entering a producer (one forward of a zero image)."""
    sizes: list[int] = []

    def size(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        sizes.append(inputs[0][0].numel())

    probe_pass(model, {model.get_submodule(s.producer): size for s in stages}, input_shape, device)
    return max(sizes)
