"""Channel removal is exact where no weights are refitted (pruned model == masked dense model), and the
saved artifact reloads, without the dense checkpoint, into a module with identical outputs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from cplitool.toolchain.artifacts import ModelInfo, load_artifact, save_artifact
from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.prune.surgery import remove_channels
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.nets import randomise_bn

CASES = [("quick_vgg", (1, 8, 8), {}), ("resnet20", (3, 32, 32), {}), ("vgg16_cifar", (3, 32, 32), {"width": 0.25})]


def randomised(name: str, kwargs: dict[str, float]) -> nn.Module:
    """A model with non-trivial BatchNorm statistics and biases, so a wrong channel would show."""
    torch.manual_seed(0)
    model = create_model(name, 10, **kwargs)
    return randomise_bn(model)


@pytest.mark.parametrize("method", ["l1", "random"])
@pytest.mark.parametrize("name, shape, kwargs", CASES)
def test_pruned_equals_masked_dense(name: str, shape: tuple[int, ...], kwargs: dict[str, float], method: str) -> None:
    dense = randomised(name, kwargs)
    masked = copy.deepcopy(dense)
    cfg = PruneSection(method=method, macs_keep=0.5)
    plan = make_plan(dense, shape, cfg)
    result = prune_model(dense, plan, cfg, [], torch.device("cpu"), seed=0)
    for stage in result.stages:  # zero the consumer's inputs from removed channels
        dropped = sorted(set(range(stage.channels)) - set(stage.kept_channels))
        with torch.no_grad():
            masked.get_submodule(stage.consumer).weight[:, dropped] = 0
    x = torch.randn(4, *shape)
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), masked(x), rtol=1e-5, atol=1e-5)
    assert any(len(s.kept_channels) < s.channels for s in result.stages)


def test_classifier_after_flatten_follows_the_last_conv() -> None:
    model = create_model("c3d", 10, width=0.125, fc_width=32).eval()
    shape = (3, 8, 16, 16)
    dg = graph(model, shape)
    last = [m for m in model.modules() if isinstance(m, nn.Conv3d)][-1]
    remove_channels(dg, last, torch.arange(0, last.out_channels, 2).numpy())
    assert model.classifier[1].in_features == last.out_channels * 16
    assert model(torch.randn(1, *shape)).shape == (1, 10)


@pytest.mark.parametrize("name, shape, kwargs", CASES)
def test_artifact_reloads_with_identical_outputs(
    tmp_path: Path, name: str, shape: tuple[int, ...], kwargs: dict[str, float]
) -> None:
    model = randomised(name, kwargs)
    cfg = PruneSection(method="l1", macs_keep=0.6)
    plan = make_plan(model, shape, cfg)
    pruned = prune_model(model, plan, cfg, [], torch.device("cpu"), seed=0).model
    path = save_artifact(tmp_path / "pruned.pt", pruned, ModelInfo(name, 10, kwargs, plan.to_dict()))
    loaded, info = load_artifact(path)
    assert info.plan["stages"][0]["keep"] == plan.stages[0].keep
    x = torch.randn(3, *shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
