"""The stage objective in Gram form equals the explicitly built (augmented) CP design; the refit never
raises the reconstruction error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cplitool.toolchain.prune import solver
from cplitool.toolchain.prune.lasso import select_exact
from cplitool.toolchain.prune.sampling import GramSums
from cplitool.toolchain.prune.solver import (
    ConsumerTerm,
    KeptRows,
    KeptSums,
    channel_gram,
    choose_ridge,
    columns,
    consumer_objective,
    objective,
    refit,
    ridge_grid,
    select_group,
    solve_stage,
)


def problem(seed: int, rows: int = 120, c: int = 6, k: int = 4, n: int = 5, grads: bool = True):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(rows, c * k, generator=g, dtype=torch.float64)
    W = torch.randn(n, c * k, generator=g, dtype=torch.float64)
    Y = X @ W.t() + 0.3 * torch.randn(rows, n, generator=g, dtype=torch.float64)
    G = torch.randn(rows, n, generator=g, dtype=torch.float64) if grads else None
    sums = GramSums.empty(c * k, c, n, grads, torch.device("cpu"))
    for part in torch.arange(rows).chunk(3):  # streamed in batches
        sums.add(X[part], Y[part], None if G is None else G[part], W)
    return X, W, Y, G, sums, c, k


def explicit_design(X, W, Y, G, c, k, s, gamma):  # type: ignore[no-untyped-def]
    """CP's design with rows weighted by sqrt(s_j), plus sqrt(gamma) * (A, b) rows."""
    rows, n = Y.shape
    Xc = X.view(rows, c, k)
    Wc = W.view(n, c, k)
    Z = torch.einsum("rck,nck->rcn", Xc, Wc)  # Z[:, i, :] = X_i W_i^T
    D = (Z * s.sqrt()).permute(0, 2, 1).reshape(rows * n, c)
    y = (Y * s.sqrt()).reshape(rows * n)
    if gamma:
        A = torch.einsum("rcn,rn->rc", Z, G)
        b = (G * Y).sum(1)
        D = torch.cat([D, gamma**0.5 * A])
        y = torch.cat([y, gamma**0.5 * b])
    return D.numpy(), y.numpy()


def test_gamma_zero_and_unit_importance_is_exactly_cp() -> None:
    X, W, Y, G, sums, c, k = problem(0, grads=False)
    Q, q, gamma = objective(sums, W, c, torch.ones(W.shape[0]), 0.0)
    D, y = explicit_design(X, W, Y, G, c, k, torch.ones(W.shape[0], dtype=torch.float64), 0.0)
    assert gamma == 0.0
    np.testing.assert_allclose(Q, D.T @ D / X.shape[0], rtol=1e-10)
    np.testing.assert_allclose(q, D.T @ y / X.shape[0], rtol=1e-10)
    assert list(select_exact(Q, q, 3)[1]) == list(select_exact(D.T @ D, D.T @ y, 3)[1])


def test_importance_and_classification_terms_equal_the_augmented_design() -> None:
    X, W, Y, G, sums, c, k = problem(1)
    s = torch.tensor([1.0, 0.1, 1.0, 0.1, 1.0], dtype=torch.float64)
    Q, q, gamma = objective(sums, W, c, s, 0.7)
    assert gamma > 0
    # gamma is relative: gamma * ||b||^2 = gamma_rel * sum_j s_j ||Y_j||^2
    b = (G * Y).sum(1)
    assert gamma * float((b**2).sum()) == pytest.approx(0.7 * float((s * (Y**2).sum(0)).sum()), rel=1e-9)
    D, y = explicit_design(X, W, Y, G, c, k, s, gamma)
    np.testing.assert_allclose(Q, D.T @ D / X.shape[0], rtol=1e-9)
    np.testing.assert_allclose(q, D.T @ y / X.shape[0], rtol=1e-9)


@pytest.mark.parametrize("step", [1, 4, 6])  # channels per strip: one, uneven (6 = 4 + 2), whole
def test_channel_gram_in_strips_equals_the_whole_product(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """B = blocks of (W^T diag(s) W) o P, formed by strips of channels and mirrored: catches a wrong strip
    offset, a missing mirror and s applied once instead of under a square root on both sides."""
    _, W, _, _, sums, c, k = problem(7)
    s = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.1], dtype=torch.float64)
    monkeypatch.setattr(solver, "STRIP_ENTRIES", step * W.shape[1] * k)
    direct = ((W.t() @ (s[:, None] * W)) * sums.P).view(c, k, c, k).sum((1, 3))
    torch.testing.assert_close(channel_gram(W, s, sums.P, k), direct, rtol=1e-12, atol=0)


def test_float32_weights_give_the_float64_objective_within_1e_6_and_the_same_selection() -> None:
    """A float32 network's weight Gram is multiplied in float32 (twice float64's rate): the stage objective
    moves by about 1e-7 relative and selects the same channels."""
    _, W, _, _, sums, c, _ = problem(8)
    s = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.1])
    W32 = W.float()
    Q64, q64, _ = objective(sums, W32.double(), c, s.double(), 0.5)
    Q32, q32, _ = objective(sums, W32, c, s, 0.5)
    assert np.abs(Q32 - Q64).max() <= 1e-6 * np.abs(Q64).max()
    np.testing.assert_allclose(q32, q64, rtol=1e-12)  # q does not use the weight Gram
    for keep in (2, 3, 4):
        assert list(select_exact(Q32, q32, keep)[1]) == list(select_exact(Q64, q64, keep)[1])


def test_recon_error_from_grams_equals_direct() -> None:
    X, W, Y, _, sums, _, k = problem(2, grads=False)
    kept = np.array([0, 2, 5])
    cols = columns(kept, k)
    direct = float(((Y - X[:, cols] @ W[:, cols].t()) ** 2).sum() / (Y**2).sum())
    assert KeptSums.of(sums, cols).error(W[:, cols]) == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ridge", [0.0, 1e-4, 0.5])
def test_weight_fit_never_raises_reconstruction_error(seed: int, ridge: float) -> None:
    _, W, _, _, sums, c, k = problem(seed, grads=False)
    kept = np.sort(np.random.default_rng(seed).choice(c, 3, replace=False))
    sol = refit(sums, W, c, kept, ridge, 0.0)
    assert sol.err_after <= sol.err_before
    assert KeptSums.of(sums, columns(kept, k)).error(sol.weight) == pytest.approx(sol.err_after, rel=1e-9, abs=1e-12)


def test_unregularised_fit_is_the_least_squares_optimum() -> None:
    X, _, Y, _, sums, _, k = problem(7, grads=False)
    cols = columns(np.array([1, 3, 4]), k)
    fitted = KeptSums.of(sums, cols).fit(0.0)
    direct = torch.linalg.lstsq(X[:, cols], Y).solution.t()
    torch.testing.assert_close(fitted, direct, rtol=1e-8, atol=1e-8)


def test_solve_stage_keeps_the_requested_count_and_lowers_the_error() -> None:
    _, W, _, _, sums, c, _ = problem(3)
    sol = solve_stage(sums, W, c, torch.ones(W.shape[0]), 1.0, 4, 1e-4)
    assert len(sol.keep) == 4 and sol.weight.shape == (W.shape[0], 4 * (W.shape[1] // c))
    assert sol.err_after < sol.err_before


@pytest.mark.parametrize("gamma_rel", [0.0, 0.7])
def test_consumer_objective_equals_the_design_with_fixed_channels_and_ties(gamma_rel: float) -> None:
    """One consumer of a coupled group: its channels 1, 3, 4 carry root channels 2, 0, 1 and roots 0 and 2
    are tied; channels 0, 2, 5 are fixed (their contribution is moved to the target). Catches a missing
    fixed-channel correction, a wrong channel->root->class map, a wrong classification term and a wrong
    normalisation by the output energy."""
    X, W, Y, G, sums, c, k = problem(5)
    s = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.1], dtype=torch.float64)
    channels, roots = np.array([1, 3, 4]), np.array([2, 0, 1])
    classes = np.array([0, 1, 0])  # root -> tie class
    term = ConsumerTerm(sums, W, c, channels, roots, s)
    Q, q = consumer_objective(term, classes, 2, gamma_rel)
    energy = float((s * (Y * Y).sum(0)).sum())
    gamma = gamma_rel * energy / sums.bb if gamma_rel else 0.0
    D, y = explicit_design(X, W, Y, G, c, k, s, gamma)
    fixed = np.setdiff1d(np.arange(c), channels)
    y = y - D[:, fixed].sum(1)
    E = np.zeros((c, 2))
    E[channels, classes[roots]] = 1.0
    Dg = D @ E
    np.testing.assert_allclose(Q.numpy(), Dg.T @ Dg / energy, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(q.numpy(), Dg.T @ y / energy, rtol=1e-9, atol=1e-12)


def test_a_single_consumer_group_of_all_channels_is_the_stage_objective() -> None:
    """The group objective is the stage objective up to the positive scale rows/energy: same selection."""
    _X, W, Y, _G, sums, c, _k = problem(6)
    s = torch.ones(W.shape[0], dtype=torch.float64)
    Q, q, _ = objective(sums, W, c, s, 0.5)
    term = ConsumerTerm(sums, W, c, np.arange(c), np.arange(c), s)
    Qg, qg = consumer_objective(term, np.arange(c), c, 0.5)
    scale = sums.rows / float((Y * Y).sum())
    np.testing.assert_allclose(Qg.numpy(), Q * scale, rtol=1e-9)
    np.testing.assert_allclose(qg.numpy(), q * scale, rtol=1e-9)
    assert list(select_group([term], np.arange(c), c, 0.5, 3)) == list(select_exact(Q, q, 3)[1])


def correlated_rows(rows: int, truth: torch.Tensor, noise: float, g: torch.Generator):  # type: ignore[no-untyped-def]
    """Rows whose column pairs are nearly equal (an ill-conditioned P, as after ReLUs) and Y = X truth^T + noise."""
    X = torch.randn(rows, truth.shape[1], generator=g, dtype=torch.float64)
    X[:, 1::2] = X[:, ::2] + 0.05 * X[:, 1::2]
    return X, X @ truth.t() + noise * torch.randn(rows, truth.shape[0], generator=g, dtype=torch.float64)


def held_problem(rows: int, noise: float, seed: int = 0, c: int = 6, k: int = 4, n: int = 5):  # type: ignore[no-untyped-def]
    """A stage with one row per image, held-out sums on, the original weights W0 a noisy copy of the truth."""
    truth = torch.randn(n, c * k, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    X, Y = correlated_rows(rows, truth, noise, g)
    sums = GramSums.empty(c * k, c, n, False, torch.device("cpu"), held=True)
    for part in torch.arange(rows).chunk(3):
        sums.add(X[part], Y[part], None, truth, image=part)
    W0 = truth + 0.1 * torch.randn(n, c * k, generator=g, dtype=torch.float64)
    return X, Y, truth, W0, sums, c, k


def test_ridge_toward_the_prior_is_the_augmented_least_squares() -> None:
    X, Y, _, W0, sums, _, k = held_problem(40, 0.3)
    cols = columns(np.array([0, 2, 3]), k)
    lam_rel = 0.05
    lam = lam_rel * float(sums.P[cols][:, cols].diagonal().mean())
    A = torch.cat([X[:, cols], lam**0.5 * torch.eye(len(cols), dtype=torch.float64)])
    B = torch.cat([Y, lam**0.5 * W0[:, cols].t()])
    direct = torch.linalg.lstsq(A, B).solution.t()
    torch.testing.assert_close(KeptSums.of(sums, cols).fit(lam_rel, W0[:, cols]), direct, rtol=1e-8, atol=1e-8)


def test_held_out_sums_hold_every_fifth_image_and_minus_gives_the_rest() -> None:
    X, Y, _, _, sums, _, k = held_problem(40, 0.3)
    out = torch.arange(40) % 5 == 4
    assert sums.held is not None and sums.held.rows == int(out.sum())
    torch.testing.assert_close(sums.held.P, X[out].t() @ X[out])
    cols = columns(np.array([0, 2, 3]), k)
    rest = KeptSums.of(sums, cols).minus(KeptSums.of(sums.held, cols))
    torch.testing.assert_close(rest.XtY, X[~out][:, cols].t() @ Y[~out])
    torch.testing.assert_close(rest.P, X[~out][:, cols].t() @ X[~out][:, cols])


def test_ridge_search_picks_the_held_out_best_of_the_grid() -> None:
    X, Y, _, W0, sums, _, k = held_problem(30, 1.0)
    cols = columns(np.array([0, 1, 2, 3, 4]), k)
    out = torch.arange(30) % 5 == 4

    def held_error(Wk: torch.Tensor) -> float:  # straight from the rows
        return float(((Y[out] - X[out][:, cols] @ Wk.t()) ** 2).sum() / (Y[out] ** 2).sum())

    assert sums.held is not None
    train = KeptSums.of(sums, cols).minus(KeptSums.of(sums.held, cols))
    options = {lam: held_error(train.fit(lam, W0[:, cols])) for lam in ridge_grid(1e-4)}
    options[None] = held_error(W0[:, cols])  # type: ignore[index]
    assert choose_ridge(sums, cols, W0[:, cols], 1e-4) == min(options, key=options.__getitem__)
    assert len(set(options)) == 6  # 1e-4, 1e-3, 1e-2, 0.1, 1 and the original weights


def test_ridge_search_keeps_least_squares_when_rows_abound() -> None:
    _, _, _, W0, sums, c, _ = held_problem(2000, 0.05)
    sol = refit(sums, W0, c, np.arange(c), 1e-4, 0.0)
    assert sol.ridge == 1e-4


def test_ridge_search_beats_plain_least_squares_on_new_images_when_rows_are_few() -> None:
    """Few noisy rows for 24 columns: plain least squares overfits, the searched ridge generalises better."""
    _, _, truth, W0, sums, c, _ = held_problem(30, 1.0, seed=3)
    X, Y = correlated_rows(5000, truth, 1.0, torch.Generator().manual_seed(4))  # new images, same model
    searched = refit(sums, W0, c, np.arange(c), 1e-4, 0.0)
    sums.held = None  # no held-out images: the configured ridge alone
    plain = refit(sums, W0, c, np.arange(c), 1e-4, 0.0)

    def new_error(Wk: torch.Tensor) -> float:
        return float(((Y - X @ Wk.t()) ** 2).sum() / (Y**2).sum())

    assert searched.ridge != 1e-4 and plain.ridge == 1e-4
    assert new_error(searched.weight) < 0.9 * new_error(plain.weight)


def few_rows_problem(rows: int = 30, noise: float = 0.5):  # type: ignore[no-untyped-def]
    """30 rows for 80 patch columns: fewer than half of them, so the sums keep the rows as well."""
    return held_problem(rows, noise, seed=5, c=8, k=10, n=6)


def test_rows_are_kept_while_few_and_dropped_past_half_the_columns() -> None:
    *_, sums, _, _ = few_rows_problem(30)
    assert sums.few is not None and sum(len(x) for x in sums.few.X) == 30
    assert int(torch.cat(sums.few.held).sum()) == 6  # every fifth image, as the held-out sums
    *_, many, _, _ = few_rows_problem(41)  # 41 > 80 // 2
    assert many.few is None and many.rows == 41


@pytest.mark.parametrize("lam", [0.0, 1e-4, 1e-2, 1.0])
def test_fit_and_error_in_the_row_space_equal_the_gram_form(lam: float) -> None:
    """Caught: the ridge scaled by the rows' count instead of P's mean diagonal, the prior left out of the
    residual, and the dual solved with X^T X in place of X X^T."""
    _, _, _, W0, sums, _, k = few_rows_problem()
    cols = columns(np.array([0, 2, 3, 5, 7]), k)
    assert sums.few is not None
    rows, gram = KeptRows.of(sums.few, cols), KeptSums.of(sums, cols)
    prior = W0[:, cols]
    for p in (None, prior) if lam > 0 else (None,):
        torch.testing.assert_close(rows.fit(lam, p), gram.fit(lam, p), rtol=1e-7, atol=1e-7)
    assert rows.error(prior) == pytest.approx(gram.error(prior), rel=1e-10)
    train, held = rows.split()
    gram_train = gram.minus(KeptSums.of(sums.held, cols))  # type: ignore[arg-type]
    torch.testing.assert_close(train.fit(0.1, prior), gram_train.fit(0.1, prior), rtol=1e-7, atol=1e-7)
    assert held.X.shape[0] == 6 and train.X.shape[0] == 24


def test_held_out_errors_from_one_eigendecomposition_equal_a_fit_per_ridge() -> None:
    """The ridge search in the row space (one eigendecomposition for every ridge) gives the held-out error
    of each ridge's own fit, read from the sums: caught a ridge not scaled by the mean squared column norm
    and the held-out residual taken around zero instead of the prior."""
    _, _, _, W0, sums, _, k = few_rows_problem(noise=0.1)
    cols = columns(np.array([0, 2, 3, 5, 7]), k)
    assert sums.few is not None
    train, held = KeptRows.of(sums.few, cols).split()
    gram_held = KeptSums.of(sums.held, cols)  # type: ignore[arg-type]
    gram_train = KeptSums.of(sums, cols).minus(gram_held)
    grid = [0.0, 1e-4, 1e-2, 1.0]
    expected = gram_train.held_errors(gram_held, grid, W0[:, cols])
    assert train.held_errors(held, grid, W0[:, cols]) == pytest.approx(expected, rel=1e-7)
    assert len(set(np.round(expected, 6))) == len(grid)  # the ridges differ here: the check can fail


def test_refit_on_few_rows_matches_the_gram_refit() -> None:
    """The same ridge and weights whether the refit reads the rows or the sums."""
    _, _, _, W0, sums, c, _ = few_rows_problem(noise=0.1)
    kept = np.arange(c)  # (with channels removed, 24 rows never beat the original weights here)
    on_rows = refit(sums, W0, c, kept, 1e-4, 0.0)
    sums.few = None
    on_sums = refit(sums, W0, c, kept, 1e-4, 0.0)
    assert on_rows.ridge == on_sums.ridge and on_rows.ridge is not None
    torch.testing.assert_close(on_rows.weight, on_sums.weight, rtol=1e-7, atol=1e-7)
    assert on_rows.err_after == pytest.approx(on_sums.err_after, rel=1e-9)


@pytest.mark.parametrize("side, inside", [(solver.SMALL_FIT, 1), (solver.SMALL_FIT + 1, 2)])
def test_small_refits_run_on_one_thread_and_restore_the_count(side: int, inside: int) -> None:
    """Caught: a small refit left on every thread (on a busy machine each of its calls waits for the second
    one), a large one held to one, or the thread count not restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with solver.threads_for(side):
            seen = torch.get_num_threads()
        assert (seen, torch.get_num_threads()) == (inside, 2)
    finally:
        torch.set_num_threads(before)
