"""Small networks with each kind of coupled channel group, for the scope = "all" tests."""

from __future__ import annotations

import torch
from torch import nn


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class Residual(nn.Module):
    """A residual stream written by `stem.0` and `block.3` (through an add) and read by `block.0` and
    `head.0`; a hidden group inside `head`; a linear layer after pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), _bn(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1), _bn(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), _bn(16)
        )
        self.head = nn.Sequential(
            nn.Conv2d(16, 24, 1), _bn(24), nn.ReLU(), nn.Conv2d(24, 32, 3, padding=1), _bn(32), nn.ReLU()
        )
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.fc(self.head(x).mean((2, 3)))


class Concat(nn.Module):
    """Two branches concatenated (channel offsets), then BatchNorm and one reader."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(3, 24, 1)
        self.bn = _bn(40)
        self.c = nn.Conv2d(40, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
        return self.fc(torch.relu(self.c(y)).mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s


class Inverted(nn.Module):
    """MobileNet/EfficientNet style: expand, depthwise, squeeze-excitation, project, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(3, 32, 1), _bn(32), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32), _bn(32), nn.ReLU())
        self.se = SqueezeExcite(32, 8)
        self.project = nn.Sequential(nn.Conv2d(32, 24, 1), _bn(24), nn.ReLU())
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.project(self.se(self.dw(self.expand(x)))).mean((2, 3)))


class Grouped(nn.Module):
    """ResNeXt/RegNet style: 1x1, grouped 3x3 (4 groups), 1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 32, 1), _bn(32), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=4), _bn(32), nn.ReLU())
        self.c = nn.Sequential(nn.Conv2d(32, 16, 1), _bn(16), nn.ReLU())
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c(self.b(self.a(x))).mean((2, 3)))


class ChannelsLast(nn.Module):
    """A LayerNorm over channels (ConvNeXt style): its group cannot be removed exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.LayerNorm(16)
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.a(x).permute(0, 2, 3, 1))
        y = self.down(torch.relu(self.up(y)))
        return self.fc(y.mean((1, 2)))


def depthwise_chain() -> nn.Module:
    """One nn.Sequential in which a group's first reader (the depthwise conv, masked only) comes a block before its
    dense consumer: choosing that group changes activations entering the block the next group starts from."""

    def conv(cin: int, cout: int, k: int, groups: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups), _bn(cout), nn.ReLU()]

    return nn.Sequential(
        *conv(3, 16, 3), *conv(16, 16, 3, groups=16), *conv(16, 32, 1), *conv(32, 32, 3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


NETS = {
    "residual": Residual,
    "concat": Concat,
    "inverted": Inverted,
    "grouped": Grouped,
    "channels_last": ChannelsLast,
    "depthwise_chain": depthwise_chain,
}


def randomised(name: str) -> nn.Module:
    """Seeded weights with non-trivial BatchNorm statistics, so a wrong channel would show."""
    torch.manual_seed(0)
    model = NETS[name]()
    return randomise_bn(model)


def randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (seeded by the caller), in eval mode."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()
