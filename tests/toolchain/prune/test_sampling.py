"""Sampled patches reproduce the conv's outputs; blocked and symmetric Gram sums equal direct ones; the
look-ahead subsample takes its fraction of rows without moving the sampled positions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune import sampling
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.sampling import (
    GramSums,
    RowBlocks,
    capture_original,
    conv_out_size,
    gather_patches,
    gather_rows,
    sample_positions,
)
from cplitool.toolchain.recipe.sections import PruneSection


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


def test_symmetric_gram_and_row_blocks_equal_direct_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "STRIP", 5)  # several strips, the last one partial
    monkeypatch.setattr(sampling, "BLOCK_ROWS", 50)
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(130, 12, generator=g), torch.randn(4, 12, generator=g)
    Y, G = X @ W.t(), torch.randn(130, 4, generator=g)
    torch.testing.assert_close(sampling.symmetric_gram(X), (X.t() @ X).double(), rtol=1e-5, atol=1e-4)
    direct = GramSums.empty(12, 3, 4, True, torch.device("cpu"))
    direct.add(X, Y, G, W)
    blocked = GramSums.empty(12, 3, 4, True, torch.device("cpu"))
    rb = RowBlocks(blocked, W)
    for part in torch.arange(130).chunk(7):
        rb.add(X[part], Y[part], G[part])
    rb.flush()
    assert blocked.rows == direct.rows == 130
    for name in ("P", "XtY", "yy", "AtA", "Atb"):
        torch.testing.assert_close(getattr(blocked, name), getattr(direct, name), rtol=1e-5, atol=1e-4)


def test_streaming_sums_are_whole_after_rows_added_after_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming sums add upper strips only and mirror on the first read of P: a read, more rows, another read
    must still give the whole X^T X (no stale lower triangle from the first read)."""
    monkeypatch.setattr(sampling, "STRIP", 5)
    g = torch.Generator().manual_seed(1)
    X, W = torch.randn(60, 12, generator=g), torch.randn(4, 12, generator=g)
    sums = GramSums.empty(12, 3, 4, False, torch.device("cpu"))
    sums.add(X[:30], X[:30] @ W.t(), None, W)
    torch.testing.assert_close(sums.P, (X[:30].t() @ X[:30]).double(), rtol=1e-5, atol=1e-4)
    sums.add(X[30:], X[30:] @ W.t(), None, W)
    torch.testing.assert_close(sums.P, (X.t() @ X).double(), rtol=1e-5, atol=1e-4)


def test_lookahead_subsample_keeps_positions_and_takes_the_fraction() -> None:
    torch.manual_seed(0)
    model = create_model("quick_vgg", 10).eval()
    stages = make_plan(model, (1, 8, 8), PruneSection()).stages
    g = torch.Generator().manual_seed(0)
    loader = [(torch.randn(20, 1, 8, 8, generator=g), torch.randint(0, 10, (20,), generator=g)) for _ in range(2)]
    ahead = {stages[1].consumer}
    kw = {"positions": 10, "seed": 0, "grads": True, "lookahead": ahead, "device": torch.device("cpu")}
    full = capture_original(model, stages, loader, **kw)  # type: ignore[arg-type]
    part = capture_original(model, stages, loader, lookahead_fraction=0.25, **kw)  # type: ignore[arg-type]
    assert full.lookahead[stages[1].consumer].rows == 400
    assert part.lookahead[stages[1].consumer].rows == 100
    for name, t in full.targets.items():
        assert all(torch.equal(a, b) for a, b in zip(t.pos, part.targets[name].pos, strict=True))
