"""Sampled patches times the flattened kernel reproduce the conv's output at the sampled positions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toolchain.prune.sampling import conv_out_size, gather_patches, gather_rows, sample_positions


@pytest.mark.parametrize(
    "conv, shape",
    [
        (nn.Conv2d(3, 5, 3, padding=1, bias=False), (2, 3, 9, 7)),
        (nn.Conv2d(4, 6, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), bias=True), (3, 4, 11, 10)),
        (nn.Conv3d(3, 4, 3, padding=1, stride=(1, 2, 2), bias=False), (2, 3, 5, 8, 8)),
    ],
)
def test_patches_reproduce_conv_outputs(conv: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(*shape)
    y = conv(x).detach()
    gen = torch.Generator().manual_seed(0)
    out_size = conv_out_size(conv, tuple(shape[2:]))
    assert out_size == list(y.shape[2:])
    pos = sample_positions(shape[0], out_size, 7, gen)
    X = gather_patches(x, conv, pos)
    Yhat = X @ conv.weight.detach().reshape(conv.weight.shape[0], -1).t()
    if conv.bias is not None:
        Yhat = Yhat + conv.bias.detach()
    torch.testing.assert_close(Yhat, gather_rows(y, pos), rtol=1e-5, atol=1e-5)


def test_positions_are_seeded() -> None:
    a = sample_positions(4, [8, 8], 10, torch.Generator().manual_seed(3))
    b = sample_positions(4, [8, 8], 10, torch.Generator().manual_seed(3))
    c = sample_positions(4, [8, 8], 10, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (40, 3) and int(a[:, 1:].max()) < 8
