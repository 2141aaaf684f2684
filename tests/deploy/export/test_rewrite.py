"""Export-only replacement of adaptive average pools the exporters cannot convert."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cplitool.deploy.export.rewrite import PoolAsMatmul, exportable


@pytest.mark.parametrize(
    ("pool", "shape"),
    [
        (nn.AdaptiveAvgPool3d((1, 4, 4)), (2, 3, 1, 1, 1)),  # C3D on a tiny clip: upsampling
        (nn.AdaptiveAvgPool3d((1, 4, 3)), (2, 3, 2, 7, 5)),  # overlapping windows
        (nn.AdaptiveAvgPool2d((7, 7)), (2, 3, 9, 5)),  # torchvision VGG on small images
        (nn.AdaptiveAvgPool2d((None, 2)), (2, 3, 9, 5)),
        (nn.AdaptiveAvgPool1d(4), (2, 3, 10)),
    ],
)
def test_replacement_matches_the_pool(pool: nn.Module, shape: tuple[int, ...]) -> None:
    model = nn.Sequential(nn.Identity(), pool)
    x = torch.randn(*shape)
    clone, names = exportable(model, x)
    assert names == ["1"] and isinstance(clone[1], PoolAsMatmul)
    assert type(model[1]) is type(pool)  # the user's model is untouched
    torch.testing.assert_close(clone(x), model(x), atol=1e-6, rtol=1e-5)


def test_divisible_pools_are_left_alone() -> None:
    model = nn.Sequential(nn.AdaptiveAvgPool2d((2, 2)), nn.AdaptiveAvgPool2d(1))
    clone, names = exportable(model, torch.randn(1, 3, 8, 8))
    assert clone is model and names == []
