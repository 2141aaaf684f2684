"""C3D (Tran et al. 2015): 8 Conv3d layers for 16-frame 112x112 clips, as used on UCF-101."""

from __future__ import annotations

import torch
from torch import nn

from cplitool.toolchain.models.registry import register

C3D_CFG: list[int | str] = [64, "P1", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"]


class C3D(nn.Module):
    """Conv3d 3x3x3 chain; pool1 keeps time, later pools halve it. BatchNorm (optional) eases training from scratch.

    An adaptive pool to (1, 4, 4) before fc6 keeps the classifier valid for any clip size and makes the
    8192-wide fc6 input follow the last conv's width when it is pruned.
    """

    def __init__(
        self,
        num_classes: int = 101,
        in_channels: int = 3,
        width: float = 1.0,
        fc_width: int = 4096,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in C3D_CFG:
            if v == "P1":
                layers.append(nn.MaxPool3d((1, 2, 2), (1, 2, 2)))
            elif v == "P":
                layers.append(nn.MaxPool3d(2, 2, ceil_mode=True))
            else:
                out = max(1, round(int(v) * width))
                layers += [nn.Conv3d(c, out, 3, padding=1, bias=not batch_norm)]
                layers += [nn.BatchNorm3d(out)] if batch_norm else []
                layers += [nn.ReLU(inplace=True)]
                c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d((1, 4, 4))
        self.classifier = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(c * 16, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(fc_width, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(fc_width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register("c3d", (3, 16, 112, 112), "C3D for 16x112x112 clips (UCF-101), Conv3d throughout (~38.5 G MACs)")
def c3d(num_classes: int = 101, **kwargs: float | int | bool) -> C3D:
    return C3D(num_classes, **kwargs)  # type: ignore[arg-type]
