"""prune.gamma_search: the held-out sums carry the classification term, a candidate's layer is applied by
masking, the chosen gamma_rel is the lowest held-out loss, and one candidate is the same as no search."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.prune.gamma_search import choose_gamma, held_images, held_loss, masked_weight
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.prune.sampling import HOLD_OUT, GramSums
from cplitool.toolchain.prune.solver import solve_stage
from cplitool.toolchain.recipe.load import recipe_from_text
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.test_cpli_terms import CPU, batches, one_torch_thread, quick_vgg

__all__ = ["one_torch_thread"]  # the autouse fixture, shared


def test_held_classification_sums_and_minus_are_the_other_images_sums() -> None:
    """Caught: the held-out rows summed without their classification term, so the gamma search's training
    sums would keep the held-out images' A^T A."""
    g = torch.Generator().manual_seed(0)
    images, positions, c, k, n = 30, 3, 4, 2, 5
    rows = images * positions
    X = torch.randn(rows, c * k, generator=g, dtype=torch.float64)
    W = torch.randn(n, c * k, generator=g, dtype=torch.float64)
    Y, G = (
        torch.randn(rows, n, generator=g, dtype=torch.float64),
        torch.randn(rows, n, generator=g, dtype=torch.float64),
    )
    image = torch.arange(images).repeat_interleave(positions)
    sums = GramSums.empty(c * k, c, n, True, CPU, held=True, held_classification=True)
    for part in torch.arange(rows).view(3, -1):
        sums.add(X[part], Y[part], G[part], W, image[part])
    assert sums.held is not None
    train = sums.minus(sums.held)
    keep = image % HOLD_OUT != HOLD_OUT - 1
    A = (X * (G @ W)).view(rows, c, k).sum(2)
    b = (G * Y).sum(1)
    torch.testing.assert_close(train.AtA, A[keep].t() @ A[keep])
    torch.testing.assert_close(train.Atb, A[keep].t() @ b[keep])
    assert train.bb == pytest.approx(float((b[keep] ** 2).sum()))
    torch.testing.assert_close(train.P, X[keep].t() @ X[keep])
    assert train.rows == int(keep.sum())
    plain = GramSums.empty(c * k, c, n, True, CPU, held=True)  # the ridge search alone: no classification sums
    plain.add(X, Y, G, W, image)
    assert plain.held is not None and plain.held.AtA is None


def test_masked_weight_computes_the_pruned_layer() -> None:
    conv = nn.Conv2d(5, 3, 3, padding=1, bias=False)
    keep = torch.tensor([0, 2, 3])
    fitted = torch.randn(3, 3 * 9)
    small = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        small.weight.copy_(fitted.view(3, 3, 3, 3))
        conv.weight.copy_(masked_weight(conv, 5, keep, fitted))
    x = torch.randn(2, 5, 6, 6)
    torch.testing.assert_close(conv(x), small(x[:, keep]))


def test_held_images_are_every_fifth_image_in_loader_order() -> None:
    loader = batches((1, 8, 8), count=3, size=7)
    x, y = held_images(loader)
    allx, ally = torch.cat([b[0] for b in loader]), torch.cat([b[1] for b in loader])
    torch.testing.assert_close(x, allx[HOLD_OUT - 1 :: HOLD_OUT])
    assert torch.equal(y, ally[HOLD_OUT - 1 :: HOLD_OUT])


def test_choose_gamma_is_the_lowest_held_out_loss_and_restores_the_layer() -> None:
    """Each candidate's loss is recomputed here from its own selection and refit on the training sums.
    Caught: the candidates selected on all the sums (held-out images included), the layer left masked."""
    model = quick_vgg()
    loader = batches((1, 8, 8), count=2, size=40)
    cfg = PruneSection(method="cpli", macs_keep=0.5, positions=8, round_to=1)
    stage = make_plan(model, (1, 8, 8), cfg).stages[-1]  # where the candidates select differently
    from cplitool.toolchain.prune.sampling import capture_original, prefix_inputs, stage_grams

    capture = capture_original(
        copy.deepcopy(model), [stage], loader, positions=8, seed=0, grads=True, lookahead=set(), device=CPU
    )
    grams, _ = stage_grams(
        model, stage.consumer, prefix_inputs(model, stage.consumer, loader, CPU), capture.targets[stage.consumer],
        True, CPU, held=True, held_classification=True,
    )  # fmt: skip
    s = torch.ones(model.get_submodule(stage.consumer).weight.shape[0], dtype=torch.float64)
    held = held_images(loader)
    before = model.get_submodule(stage.consumer).weight.detach().clone()
    chosen, losses = choose_gamma(model, stage, grams, s, [0.0, 1.0, 100.0], 1e-4, held, CPU)
    assert torch.equal(model.get_submodule(stage.consumer).weight, before)
    assert chosen == min(losses, key=losses.__getitem__) and set(losses) == {0.0, 1.0, 100.0}
    assert grams.held is not None
    train = grams.minus(grams.held)
    for gamma_rel, loss in losses.items():
        twin = copy.deepcopy(model)
        conv = twin.get_submodule(stage.consumer)
        sol = solve_stage(train, conv.weight.detach().flatten(1), stage.channels, s, gamma_rel, stage.keep, 1e-4)
        with torch.no_grad():
            conv.weight.copy_(masked_weight(conv, stage.channels, sol.keep, sol.weight))
        assert held_loss(twin, *held, CPU) == pytest.approx(loss, rel=1e-9)
    assert len(set(losses.values())) > 1  # the candidates differ here, so the choice means something


def test_one_candidate_is_no_search_and_reports_the_losses() -> None:
    model = quick_vgg()
    loader = batches((1, 8, 8), count=2, size=40)
    base = PruneSection(method="cpli", macs_keep=0.5, positions=8, round_to=1, gamma_rel=1.0)
    plan = make_plan(model, (1, 8, 8), base)
    plain = prune_model(copy.deepcopy(model), plan, base, loader, CPU, seed=0)
    one = PruneSection(**{**base.__dict__, "gamma_search": [1.0]})
    searched = prune_model(copy.deepcopy(model), plan, one, loader, CPU, seed=0)
    assert [r.kept_channels for r in searched.stages] == [r.kept_channels for r in plain.stages]
    assert all(r.gamma_rel == 1.0 and set(r.gamma_losses) == {"1.0"} for r in searched.stages)
    two = PruneSection(**{**base.__dict__, "gamma_search": [0.0, 3.0], "ridge_search": False})
    result = prune_model(copy.deepcopy(model), plan, two, loader, CPU, seed=0)
    assert all(r.gamma_rel in (0.0, 3.0) and len(r.gamma_losses) == 2 for r in result.stages)
    assert all(r.ridge in (None, 1e-4) for r in result.stages)  # ridge_search off: the held-out sums only scored


@pytest.mark.parametrize(
    "text, message",
    [
        ('gamma_search = [1.0]\nscope = "all"', 'prune.scope = \\"blocks\\"'),
        ('gamma_search = [1.0]\nmethod = "cp"', "prune.gamma_search"),
        ("gamma_search = [-1.0]", "prune.gamma_search"),
    ],
)
def test_gamma_search_keys_are_validated(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        recipe_from_text(f"[prune]\n{text}\n", Path("r.toml"))
