"""Every registered architecture builds and maps a batch to (N, num_classes); bad arguments are usage errors."""

from __future__ import annotations

import pytest
import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model, input_shape, list_models

# Small inputs where the architecture allows (global pooling), so the whole set runs in seconds.
SMALL_INPUTS: dict[str, tuple[int, ...]] = {
    "quick_vgg": (1, 8, 8),
    "vgg16_cifar": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "resnet56": (3, 32, 32),
    "resnet110": (3, 32, 32),
    "resnet18": (3, 64, 64),
    "resnet34": (3, 64, 64),
    "resnet50": (3, 64, 64),
    "vgg16_bn": (3, 64, 64),
    "c3d": (3, 8, 32, 32),
}


def test_every_registered_model_is_covered() -> None:
    assert sorted(SMALL_INPUTS) == list_models()


# Over 100 M parameters: initialising them takes longer than every other test here together, so these
# run on the meta device, where every op still checks and propagates shapes but nothing is computed.
SHAPE_ONLY = {"vgg16_bn", "c3d"}


@pytest.mark.parametrize("name", sorted(SMALL_INPUTS))
def test_forward_shape(name: str) -> None:
    torch.manual_seed(0)
    device = torch.device("meta" if name in SHAPE_ONLY else "cpu")
    with device:
        model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *SMALL_INPUTS[name], device=device))
    assert out.shape == (2, 7)
    assert name in SHAPE_ONLY or torch.isfinite(out).all()
    assert len(input_shape(name)) == len(SMALL_INPUTS[name])


def test_registered_input_shapes() -> None:
    assert input_shape("vgg16_cifar") == (3, 32, 32)
    assert input_shape("resnet50") == (3, 224, 224)
    assert input_shape("c3d") == (3, 16, 112, 112)
    assert input_shape("quick_vgg", {"in_channels": 3}) == (3, 8, 8)


def test_vgg16_cifar_has_13_conv_bn_relu() -> None:
    model = create_model("vgg16_cifar")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 13 and len(bns) == 13


def test_resnet_depths() -> None:
    for name, depth in (("resnet20", 20), ("resnet56", 56), ("resnet110", 110)):
        convs = [m for m in create_model(name).modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) + 1 == depth  # convs plus the classifier


def test_c3d_uses_conv3d_and_kwargs() -> None:
    model = create_model("c3d", num_classes=5, width=0.25, fc_width=32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 8 and convs[0].out_channels == 16
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)


def test_unknown_model_and_bad_kwargs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"unknown model 'vgg17'"):
        create_model("vgg17")
    with pytest.raises(UsageError, match=r"model.kwargs: .* do not fit 'resnet20'"):
        create_model("resnet20", depth=3)


def test_pretrained_needs_1000_classes() -> None:
    from cplitool.toolchain.errors import CplitoolError

    with pytest.raises(CplitoolError, match=r"1000 classes"):
        create_model("resnet18", num_classes=10, pretrained=True)
