"""torchvision's ImageNet models by name; pretrained weights come from torchvision's own hub when asked."""

from __future__ import annotations

from torch import nn

from cplitool.toolchain.errors import CplitoolError
from cplitool.toolchain.models.registry import register


def build_torchvision(arch: str, num_classes: int, pretrained: bool) -> nn.Module:
    """Build `arch` from torchvision; with `pretrained`, fetch its DEFAULT weights (ImageNet, 1000 classes)."""
    import torchvision

    if not pretrained:
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    if num_classes != 1000:
        raise CplitoolError(f"{arch}: pretrained torchvision weights have 1000 classes, recipe asks for {num_classes}")
    try:
        return torchvision.models.get_model(arch, weights="DEFAULT")
    except (OSError, RuntimeError) as e:
        raise CplitoolError(
            f"{arch}: cannot fetch pretrained weights ({e}); on an offline machine set model.pretrained = false "
            "and point model.checkpoint at a local state_dict"
        ) from None


def _register(arch: str, macs: str) -> None:
    @register(arch, (3, 224, 224), f"torchvision {arch} for 224x224 ImageNet inputs ({macs})")
    def build(num_classes: int = 1000, pretrained: bool = False) -> nn.Module:
        return build_torchvision(arch, num_classes, pretrained)


for _arch, _macs in (
    ("resnet18", "~1.8 G MACs"),
    ("resnet34", "~3.7 G MACs"),
    ("resnet50", "~4.1 G MACs"),
    ("vgg16_bn", "~15.5 G MACs"),
):
    _register(_arch, _macs)
