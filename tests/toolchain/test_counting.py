"""MACs and parameters from torch's flop counter, checked against the published figures."""

from __future__ import annotations

import pytest
import torch

from cplitool.toolchain.counting import count_model
from cplitool.toolchain.models import create_model, input_shape


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("vgg16_cifar", 313e6, 315e6),  # CP / ThiNet papers: 313.5 M
        ("resnet56", 125e6, 127e6),  # He et al.: 125 M
        ("resnet20", 40e6, 42e6),
        ("resnet50", 4.0e9, 4.2e9),  # torchvision: 4.09 GFLOPS (multiply-adds)
    ],
)
def test_macs_match_known_values(name: str, low: float, high: float) -> None:
    counts = count_model(create_model(name), input_shape(name))
    assert low <= counts.macs <= high
    assert counts.macs == sum(layer.macs for layer in counts.layers)  # no MACs outside conv/linear layers


def test_params_match_the_model() -> None:
    model = create_model("resnet20")
    counts = count_model(model, (3, 32, 32))
    assert counts.params == sum(p.numel() for p in model.parameters())
    assert sum(layer.params for layer in counts.layers) == counts.params - sum(
        p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()
    )


def test_conv3d_is_counted() -> None:
    model = create_model("c3d", num_classes=10, fc_width=64)
    counts = count_model(model, (3, 16, 112, 112))
    first = counts.layers[0]
    assert (first.kind, first.in_channels, first.out_channels) == ("Conv3d", 3, 64)
    assert first.macs == 64 * 3 * 27 * 16 * 112 * 112  # out x in x k^3 x output positions
    assert 38e9 <= counts.macs <= 39e9  # C3D: ~38.5 G MACs per 16x112x112 clip


def test_counting_depends_on_input_size_and_leaves_the_model_alone() -> None:
    model = create_model("quick_vgg").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, big = count_model(model, (1, 8, 8)), count_model(model, (1, 16, 16))
    assert big.macs == pytest.approx(4 * small.macs, rel=0.01)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pruned_widths_are_reported() -> None:
    model = create_model("vgg16_cifar", width=0.5)
    counts = count_model(model, (3, 32, 32))
    assert counts.layers[0].out_channels == 32
    assert counts.macs < 314e6 / 3.5  # roughly a quarter
