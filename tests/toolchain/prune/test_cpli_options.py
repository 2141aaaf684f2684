"""CPLI options beyond the paper (all off by default): the refit on the combined objective (conjugate
gradient), classification rows per image, BatchNorm folding at every stage, and their recipe keys."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune import sampling
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.prune.sampling import GramSums, RowBlocks
from cplitool.toolchain.prune.solver import _Rows, columns, combined_objective, gamma_of, refit, refit_cg
from cplitool.toolchain.recipe.load import recipe_from_text
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.test_cpli_terms import CPU, Spy, batches, one_torch_thread, quick_vgg, random_bn

__all__ = ["one_torch_thread"]  # the autouse fixture, shared


def problem(per_image: bool, seed: int = 0, images: int = 60, positions: int = 4, c: int = 5, k: int = 3, n: int = 4):  # type: ignore[no-untyped-def]
    """Rows grouped by image (positions consecutive), Y a noisy linear map of X, G random."""
    g = torch.Generator().manual_seed(seed)
    rows = images * positions
    X = torch.randn(rows, c * k, generator=g, dtype=torch.float64)
    W = torch.randn(n, c * k, generator=g, dtype=torch.float64)
    Y = X @ W.t() + 0.5 * torch.randn(rows, n, generator=g, dtype=torch.float64)
    G = torch.randn(rows, n, generator=g, dtype=torch.float64)
    image = torch.arange(images).repeat_interleave(positions)
    grams = GramSums.empty(c * k, c, n, True, CPU, per_image=per_image, store=True)
    for part in torch.arange(rows).view(3, -1):  # three calls, whole images each
        grams.add(X[part], Y[part], G[part], W, image[part])
    return X, W, Y, G, image, grams, c, k


def explicit_objective(Wk, X, Y, G, image, s, gamma, lam, per_image):  # type: ignore[no-untyped-def]
    """The refit's objective from the rows themselves (ridge weighted by s like the solver's)."""
    Yhat = X @ Wk.t()
    recon = (s * ((Y - Yhat) ** 2).sum(0)).sum() + lam * (s * (Wk**2).sum(1)).sum()
    u, b = (G * Yhat).sum(1), (G * Y).sum(1)
    if per_image:
        u = torch.zeros(int(image.max()) + 1, dtype=u.dtype).index_add(0, image, u)
        b = torch.zeros_like(u).index_add(0, image, b)
    return recon + gamma * ((u - b) ** 2).sum()


@pytest.mark.parametrize("per_image", [False, True])
def test_cg_refit_is_the_combined_objectives_minimum_and_beats_least_squares(per_image: bool) -> None:
    """The CG weights zero the gradient of the combined objective (explicit rows, autograd) and lower it below
    the plain least-squares refit. Caught: the classification part left out of the CG operator; the refit's
    classification rows taken per position while the sums are per image."""
    X, W, Y, G, image, grams, c, k = problem(per_image)
    s = torch.tensor([1.0, 0.1, 1.0, 0.5], dtype=torch.float64)
    kept = np.array([0, 2, 3])
    cols = columns(kept, k)
    gamma = gamma_of(grams, s, 1.0)
    assert gamma > 0
    ls = refit(grams, W, c, kept, 1e-4, 0.0)
    cg = refit_cg(grams, W, c, kept, s, gamma, 1e-4, 0.0)
    rows = _Rows.of(grams.stored, cols, per_image)  # type: ignore[arg-type]
    assert combined_objective(grams, cols, cg.weight, s, gamma, rows) < 0.999 * combined_objective(
        grams, cols, ls.weight, s, gamma, rows
    )
    lam = 1e-4 * float(grams.P[cols][:, cols].diagonal().mean())
    Wk = cg.weight.clone().requires_grad_()
    explicit_objective(Wk, X[:, cols], Y, G, image, s, gamma, lam, per_image).backward()
    Wl = ls.weight.clone().requires_grad_()
    explicit_objective(Wl, X[:, cols], Y, G, image, s, gamma, lam, per_image).backward()
    assert Wk.grad is not None and Wl.grad is not None
    assert float(Wk.grad.norm()) < 1e-5 * float(Wl.grad.norm())
    # without lam the explicit and Gram-form objectives agree
    direct = explicit_objective(cg.weight, X[:, cols], Y, G, image, s, gamma, 0.0, per_image) / X.shape[0]
    assert combined_objective(grams, cols, cg.weight, s, gamma, rows) == pytest.approx(
        float(direct), rel=1e-6
    )  # X stored as float32


def test_cg_refit_without_classification_is_the_least_squares_fit() -> None:
    """gamma = 0: the s-weighted ridge makes each output's problem the plain one, whatever s.
    Caught: the ridge not weighted by s."""
    _, W, _, _, _, grams, c, _ = problem(False)
    s = torch.tensor([1.0, 0.1, 1.0, 0.5], dtype=torch.float64)
    kept = np.array([1, 2, 4])
    torch.testing.assert_close(
        refit_cg(grams, W, c, kept, s, 0.0, 1e-4, 0.0).weight, refit(grams, W, c, kept, 1e-4, 0.0).weight
    )


def test_per_image_rows_sum_each_images_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-image sums equal explicit per-image a and b, also when RowBlocks merges batches whose images all
    number from 0. Caught: batch-local image ids without the per-batch offset (images of different batches
    merged)."""
    monkeypatch.setattr(sampling, "BLOCK_ROWS", 10**6)  # every batch in one block
    g = torch.Generator().manual_seed(0)
    c, k, n, positions, per_batch = 3, 2, 4, 5, 6
    W = torch.randn(n, c * k, generator=g, dtype=torch.float64)
    grams = GramSums.empty(c * k, c, n, True, CPU, per_image=True)
    blocks = RowBlocks(grams, W)
    A_img, b_img = [], []
    for _ in range(3):
        X = torch.randn(per_batch * positions, c * k, generator=g, dtype=torch.float64)
        Y, G = X @ W.t(), torch.randn(per_batch * positions, n, generator=g, dtype=torch.float64)
        pos = torch.stack(
            [torch.arange(per_batch).repeat_interleave(positions), torch.zeros(len(X), dtype=torch.long)], 1
        )
        blocks.add(X, Y, G, pos)
        a = torch.einsum("rck,nck,rn->rc", X.view(-1, c, k), W.view(n, c, k), G)
        A_img.append(a.view(per_batch, positions, c).sum(1))
        b_img.append((G * Y).sum(1).view(per_batch, positions).sum(1))
    blocks.flush()
    A, b = torch.cat(A_img), torch.cat(b_img)
    assert grams.AtA is not None and grams.Atb is not None
    torch.testing.assert_close(grams.AtA, A.t() @ A)
    torch.testing.assert_close(grams.Atb, A.t() @ b)
    assert grams.bb == pytest.approx(float((b**2).sum()), rel=1e-12)
    assert grams.rows == 3 * per_batch * positions


def test_fold_bn_weighs_outputs_by_the_following_batchnorm_at_block_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """With fold_bn, each ResNet stage's s is (gamma/sigma)^2 of the BatchNorm right after its consumer (bn2),
    though block outputs have importance 1. Caught: folding the producer's BatchNorm (bn1) instead."""
    torch.manual_seed(0)
    model = random_bn(create_model("resnet20", 10))
    cfg = PruneSection(method="cpli", macs_keep=0.6, positions=2, fold_bn=True)
    plan = make_plan(model, (3, 32, 32), cfg)
    spy = Spy(monkeypatch)
    prune_model(copy.deepcopy(model), plan, cfg, batches((3, 32, 32), count=1, size=6), CPU, seed=0)
    for stage, s in zip(plan.stages, spy.s, strict=True):
        bn = model.get_submodule(stage.consumer.replace("conv2", "bn2"))
        assert stage.consumer.endswith("conv2")
        expected = (bn.weight.detach().double() / (bn.running_var.double() + bn.eps).sqrt()) ** 2
        torch.testing.assert_close(s, expected)


def test_options_run_end_to_end_and_change_the_weights() -> None:
    """refit_classification with per-image rows prunes a chain, reports its errors, and gives other weights
    than the plain refit on the same channels (the selection does not use the refit).
    Caught: the stage's rows not stored (the refit then silently plain)."""
    model = quick_vgg()
    loader = batches((1, 8, 8), count=1, size=24)
    base = PruneSection(method="cpli", macs_keep=0.5, positions=8, round_to=1, classification_rows="image")
    plain = prune_model(copy.deepcopy(model), make_plan(model, (1, 8, 8), base), base, loader, CPU, seed=0)
    cfg = PruneSection(**{**base.__dict__, "refit_classification": True})
    cg = prune_model(copy.deepcopy(model), make_plan(model, (1, 8, 8), cfg), cfg, loader, CPU, seed=0)
    assert cg.stages[0].kept_channels == plain.stages[0].kept_channels
    assert all(r.err_after is not None for r in cg.stages)
    first = plain.stages[0].consumer
    assert not torch.allclose(
        cg.model.get_submodule(first).weight, plain.model.get_submodule(first).weight, rtol=1e-3, atol=1e-6
    )


@pytest.mark.parametrize(
    "line, message",
    [
        ('classification_rows = "batch"', "prune.classification_rows"),
        ("refit_classification = 2", "prune.refit_classification"),
        ("gamma_rel = -0.5", "prune.gamma_rel"),
        ("lookahead_rows_fraction = 0.0", "prune.lookahead_rows_fraction"),
    ],
)
def test_option_keys_are_validated(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        recipe_from_text(f"[prune]\n{line}\n", Path("r.toml"))
    ok = recipe_from_text('[prune]\nclassification_rows = "image"\nrefit_classification = true\n', Path("r.toml"))
    assert ok.prune.classification_rows == "image" and ok.prune.refit_classification
