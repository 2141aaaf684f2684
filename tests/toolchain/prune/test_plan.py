"""Stages and widths: the MACs target is met within 2% for every registered architecture (checked by
counting the really pruned model), and impossible plans fail with a usage error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cplitool.toolchain.counting import count_model
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model, list_models
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.plan import find_stages, make_plan, round_width
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import PruneSection

# small inputs keep the heavy ImageNet/video models fast; plans and counts use the same shape
SMALL = {"c3d": (3, 16, 32, 32), "resnet18": (3, 64, 64), "resnet34": (3, 64, 64), "resnet50": (3, 64, 64),
         "vgg16_bn": (3, 64, 64)}  # fmt: skip
DEFAULT = {"vgg16_cifar": (3, 32, 32), "quick_vgg": (1, 8, 8)}


def shape_of(name: str) -> tuple[int, ...]:
    return SMALL.get(name, DEFAULT.get(name, (3, 32, 32)))


HEAVY = {
    "resnet56",
    "resnet110",
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg16_bn",
    "c3d",
}  # seconds each: `make test-slow`


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()])
def test_macs_target_met_within_two_percent(name: str) -> None:
    model = create_model(name, 10).eval()
    shape = shape_of(name)
    before = count_model(model, shape).macs
    cfg = PruneSection(method="l1", macs_keep=0.5)
    plan = make_plan(model, shape, cfg)
    prune_model(model, plan, cfg, [], torch.device("cpu"), 0)
    after = count_model(model, shape).macs
    assert after == plan.macs_after  # the plan's arithmetic is what torch's counter measures
    assert abs(after / before - 0.5) <= 0.02 * 0.5
    assert all(s.keep % 8 == 0 or s.keep == s.channels for s in plan.stages)
    model(torch.zeros(2, *shape))  # still runs


def test_residual_blocks_are_pruned_inside_only() -> None:
    model = create_model("resnet50", 10)
    stages = find_stages(model, graph(model, (3, 64, 64)))
    producers = {s.producer for s in stages}
    assert "layer1.0.conv1" in producers and "layer1.0.conv2" in producers
    assert not any(p.endswith("conv3") or "downsample" in p or p == "conv1" for p in producers)
    cifar = create_model("resnet20", 10)
    assert {s.producer for s in find_stages(cifar, graph(cifar, (3, 32, 32)))} == {
        f"layers.{i}.conv1" for i in range(9)
    }


def test_plain_chain_keeps_the_last_conv_and_orders_stages() -> None:
    model = create_model("vgg16_cifar", 10)
    stages = find_stages(model, graph(model, (3, 32, 32)))
    assert len(stages) == 12 and stages[0].producer == "features.0" and stages[-1].consumer == "features.40"
    assert all(s.norm for s in stages)


def test_overrides_skip_and_rounding() -> None:
    model = create_model("vgg16_cifar", 10)
    cfg = PruneSection(macs_keep=0.6, skip=["features.0"], layer_keep={"features.3": 0.5}, round_to=16)
    plan = make_plan(model, (3, 32, 32), cfg)
    widths = {s.producer: s.keep for s in plan.stages}
    assert "features.0" not in widths and widths["features.3"] == 32
    assert all(w % 16 == 0 for w in widths.values())
    assert abs(plan.macs_keep - 0.6) <= 0.012
    assert round_width(64, 0.3, 8) == 16 and round_width(64, 0.01, 8) == 8 and round_width(6, 0.5, 8) == 6


def test_unmeetable_target_is_a_usage_error() -> None:
    model = create_model("quick_vgg", 10)
    all_layers = [s.producer for s in find_stages(model, graph(model, (1, 8, 8)))]
    with pytest.raises(UsageError, match="cannot be met"):
        make_plan(model, (1, 8, 8), PruneSection(macs_keep=0.5, skip=all_layers))
    with pytest.raises(UsageError, match="cannot be met"):
        make_plan(model, (1, 8, 8), PruneSection(macs_keep=0.02))


def test_bad_layer_names_are_usage_errors() -> None:
    model = create_model("quick_vgg", 10)
    with pytest.raises(UsageError, match=r"prune\.skip: 'nope' is not a conv layer"):
        make_plan(model, (1, 8, 8), PruneSection(skip=["nope"]))
    with pytest.raises(UsageError, match="cannot be pruned"):
        make_plan(model, (1, 8, 8), PruneSection(layer_keep={"features.14": 0.5}))


def test_nothing_prunable_is_a_usage_error() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(UsageError, match="nothing to prune"):
        make_plan(model, (3, 8, 8), PruneSection())
