"""VGG-style plain chains: VGG-16 for CIFAR (as in the channel-pruning papers) and the quickstart's small net."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cplitool.toolchain.models.registry import register

VGG16_CFG: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
]
QUICK_CFG: list[int | str] = [32, 32, "M", 64, 64, "M", 128]


class VGG(nn.Module):
    """conv3x3-BN-ReLU blocks with max-pools, global average pool, one linear classifier.

    The global pool makes the classifier's input width equal the last conv's width, so pruning
    that conv only has to shrink `classifier.in_features` (no hard-coded flatten size).
    """

    def __init__(self, cfg: list[int | str], num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                assert isinstance(v, int)
                layers += [
                    nn.Conv2d(c, v, 3, padding=1, bias=False),
                    nn.BatchNorm2d(v),
                    nn.ReLU(inplace=True),
                ]
                c = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register("vgg16_cifar", (3, 32, 32), "VGG-16 for 32x32 inputs: 13 conv+BN+ReLU, global pool, linear (~314 M MACs)")
def vgg16_cifar(num_classes: int = 10, width: float = 1.0, **kwargs: Any) -> VGG:
    cfg = [v if v == "M" else max(1, round(int(v) * width)) for v in VGG16_CFG]
    return VGG(cfg, num_classes, **kwargs)


@register("quick_vgg", (1, 8, 8), "small VGG-style net for 8x8 grey digits: the offline quickstart")
def quick_vgg(num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> VGG:
    return VGG(QUICK_CFG, num_classes, in_channels=in_channels, **kwargs)
