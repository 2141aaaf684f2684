"""Kept block activations give exactly the consumer inputs a pass from the network's input gives, for less work."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from cplitool.toolchain.prune import block_inputs
from cplitool.toolchain.prune.block_inputs import BlockInputs, cut_for
from cplitool.toolchain.prune.group_pruner import choose_groups
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import Terms
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.group_checks import batches
from tests.toolchain.prune.nets import randomise_bn


def test_the_cut_is_the_outermost_sequential_holding_every_consumer() -> None:
    model = torchvision.models.resnet18(num_classes=10)
    cut = cut_for(model, ["layer3.1.conv2"])
    assert cut is not None and (cut.name, cut.index, cut.block) == ("layer3", 1, "layer3.1")
    cut = cut_for(model, ["layer2.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0"])
    assert cut is not None and cut.block == "layer2.0"
    assert cut_for(model, ["layer2.1.conv1", "layer3.0.conv1"]) is None  # the model itself is no Sequential
    assert cut_for(model, ["fc"]) is None
    mobilenet = torchvision.models.mobilenet_v2(num_classes=10)
    cut = cut_for(mobilenet, ["features.5.conv.2"])  # features, not the block's own inner Sequential
    assert cut is not None and cut.block == "features.5"


def test_a_change_before_the_kept_block_makes_it_stale() -> None:
    model = torchvision.models.resnet18(num_classes=10).eval()
    data = batches((3, 32, 32), n=2, size=4)
    inputs = BlockInputs(model, data, (3, 32, 32), torch.device("cpu"))
    first = cut_for(model, ["layer2.0.conv2"])
    later = cut_for(model, ["layer2.1.conv2"])
    assert first is not None and later is not None
    assert inputs.take(first)
    inputs.changed(["layer2.0.conv2"])  # inside the kept block: it still holds
    assert inputs.valid_for(later)
    inputs.changed(["layer1.1.conv2"])  # before it: stale
    assert not inputs.valid_for(later)


def forward_passes(model: nn.Module) -> list[int]:
    """Counts the calls of the model's first conv (one per pass from the input) through a forward hook."""
    calls = [0]
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("arch, fewer", [("resnet18", 0.95), ("mobilenet_v2", 0.5)])
def test_pruning_from_kept_blocks_equals_pruning_from_the_input(
    arch: str, fewer: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same groups, kept channels and refitted weights to the bit, with fewer passes from the input: far fewer
    where one Sequential holds every block (MobileNetV2's features); a ResNet-18's stages hold two blocks each, and
    its residual-stream groups span two stages, so there the saving is small."""
    torch.manual_seed(0)
    dense = randomise_bn(getattr(torchvision.models, arch)(num_classes=10)).eval()
    shape = (3, 32, 32)
    data = batches(shape, n=2, size=8)
    cfg = PruneSection(method="cpli", scope="all", macs_keep=0.6, num_images=16, positions=4, ridge_search=False)
    results = []
    for cached in (True, False):
        model = copy.deepcopy(dense)
        if not cached:
            monkeypatch.setattr(BlockInputs, "forward", lambda self, consumers: (None, 0.0))
        passes = forward_passes(model)
        plan = make_plan(model, shape, cfg)
        reports, _ = choose_groups(model, plan, cfg, data, torch.device("cpu"), 0, Terms.of(cfg).classification)
        results.append((model, [r.kept_channels for r in reports], passes[0]))
    (cached_model, cached_kept, cached_passes), (plain_model, plain_kept, plain_passes) = results
    assert cached_kept == plain_kept
    for (name, a), (_, b) in zip(cached_model.state_dict().items(), plain_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert cached_passes < plain_passes * fewer


def test_activations_over_the_memory_bound_fall_back_to_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    model = torchvision.models.resnet18(num_classes=10).eval()
    inputs = BlockInputs(model, batches((3, 32, 32), n=2, size=4), (3, 32, 32), torch.device("cpu"))
    monkeypatch.setattr(block_inputs, "CACHE_BYTES", 1024)
    forward, _ = inputs.forward(["layer2.0.conv2"])
    assert forward is None and inputs.cut is None and inputs.acts == []
