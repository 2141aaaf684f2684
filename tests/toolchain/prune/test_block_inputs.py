"""Kept block activations give exactly the consumer inputs a pass from the network's input gives, for less work."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from cplitool.toolchain.prune import block_inputs
from cplitool.toolchain.prune.block_inputs import BlockInputs, chain_blocks, cut_for
from cplitool.toolchain.prune.group_pruner import choose_groups
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import Terms
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.group_checks import batches
from tests.toolchain.prune.nets import NETS, randomise_bn, randomised

CPU = torch.device("cpu")


def test_the_chain_opens_sequentials_and_ends_where_the_forward_stops_chaining() -> None:
    names = [n for n, _ in chain_blocks(torchvision.models.resnet18(num_classes=10), (3, 32, 32), CPU)]
    assert names[:6] == ["conv1", "bn1", "relu", "maxpool", "layer1.0", "layer1.1"]
    assert names[-2:] == ["layer4.1", "avgpool"]  # fc reads torch.flatten's output: not a chain link
    names = [n for n, _ in chain_blocks(torchvision.models.mobilenet_v2(num_classes=10), (3, 32, 32), CPU)]
    assert names[:3] == ["features.0.0", "features.0.1", "features.0.2"]  # Conv2dNormActivation is plain
    assert "features.5" in names and names[-1] == "features.18.2"  # an InvertedResidual (x + conv(x)) is one block


class Skip(nn.Module):
    """A forward that is a chain only up to `b`: `c` reads b's output plus the input."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 1), nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)) + x)


class InPlace(nn.Module):
    """A chain in which the forward changes b's output in place before c reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 1), nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.a(x))
        y.mul_(2)
        return self.c(y)


@pytest.mark.parametrize("model", [Skip(), InPlace()])
def test_the_chain_ends_before_a_child_that_reads_more_than_the_last_output(model: nn.Module) -> None:
    assert [n for n, _ in chain_blocks(model, (3, 8, 8), CPU)] == ["a", "b"]


def test_the_cut_is_the_first_block_holding_a_consumer() -> None:
    blocks = chain_blocks(torchvision.models.resnet18(num_classes=10), (3, 32, 32), CPU)
    at = {name: i for i, (name, _) in enumerate(blocks)}
    assert cut_for(blocks, ["layer3.1.conv2"]) == at["layer3.1"]
    assert cut_for(blocks, ["layer2.1.conv1", "layer3.0.conv1", "layer3.0.downsample.0"]) == at["layer2.1"]
    assert cut_for(blocks, ["layer4.1.conv1", "fc"]) is None  # fc is past the chain


def test_a_change_before_the_kept_block_makes_it_stale() -> None:
    model = torchvision.models.resnet18(num_classes=10).eval()
    inputs = BlockInputs(model, batches((3, 32, 32), n=2, size=4), (3, 32, 32), CPU)
    at = {name: i for i, (name, _) in enumerate(inputs.blocks)}
    assert inputs.take(at["layer2.0"])
    inputs.changed(["layer2.0.conv2"])  # inside the kept block: it still holds
    assert inputs.valid_for(at["layer2.1"])
    inputs.changed(["layer1.1.conv2"])  # before it: stale
    assert not inputs.valid_for(at["layer2.1"])


def forward_passes(model: nn.Module) -> list[int]:
    """Counts the calls of the model's first conv (one per pass from the input) through a forward hook."""
    calls = [0]
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("arch, fewer", [("resnet18", 0.6), ("mobilenet_v2", 0.4), ("depthwise_chain", 1.0)])
def test_pruning_from_kept_blocks_equals_pruning_from_the_input(
    arch: str, fewer: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same groups, kept channels and refitted weights to the bit, with far fewer passes from the input (14
    against 28 on ResNet-18, 16 against 52 on MobileNetV2, probes and the original network's capture included)."""
    torch.manual_seed(0)
    dense = randomised(arch) if arch in NETS else randomise_bn(getattr(torchvision.models, arch)(num_classes=10))
    shape = (3, 32, 32)
    data = batches(shape, n=2, size=8)
    cfg = PruneSection(method="cpli", scope="all", macs_keep=0.6, num_images=16, positions=4, ridge_search=False)
    results = []
    for cached in (True, False):
        model = copy.deepcopy(dense)
        if not cached:
            monkeypatch.setattr(BlockInputs, "forward", lambda self, consumers: (None, 0.0))
        plan = make_plan(model, shape, cfg)
        passes = forward_passes(model)
        reports, _ = choose_groups(model, plan, cfg, data, CPU, 0, Terms.of(cfg).classification)
        results.append((model, [r.kept_channels for r in reports], passes[0]))
    (cached_model, cached_kept, cached_passes), (plain_model, plain_kept, plain_passes) = results
    assert cached_kept == plain_kept
    for (name, a), (_, b) in zip(cached_model.state_dict().items(), plain_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert cached_passes < plain_passes * fewer


def test_activations_over_the_memory_bound_fall_back_to_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    model = torchvision.models.resnet18(num_classes=10).eval()
    inputs = BlockInputs(model, batches((3, 32, 32), n=2, size=4), (3, 32, 32), CPU)
    monkeypatch.setattr(block_inputs, "CACHE_BYTES", 1024)
    forward, _ = inputs.forward(["layer2.0.conv2"])
    assert forward is None and inputs.at is None and inputs.acts == []
