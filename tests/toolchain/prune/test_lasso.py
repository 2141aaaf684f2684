"""The Gram-form LASSO equals scikit-learn's Lasso on the explicitly built design, and the exact-count
selection keeps the LASSO's own support."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import Lasso

from cplitool.toolchain.prune import lasso
from cplitool.toolchain.prune.cholesky import Factor
from cplitool.toolchain.prune.lasso import (
    Linear,
    aim,
    knots,
    lasso_gram,
    linear,
    past_knot,
    polish,
    segment,
    select_exact,
)


def design(seed: int, rows: int, c: int, shared: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Columns of mixed scale with a shared component (correlated, like post-ReLU features), a sparse truth."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((rows, c)) * rng.uniform(0.2, 3.0, c) + shared * rng.standard_normal((rows, 1))
    y = D @ (rng.standard_normal(c) * (rng.uniform(size=c) < 0.5)) + 0.3 * rng.standard_normal(rows)
    return D, y


def sklearn_lasso(D: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    # sklearn minimises 1/(2N)||y - D b||^2 + alpha|b|_1, i.e. the Gram form with lam = N * alpha
    return Lasso(alpha=lam / len(y), fit_intercept=False, tol=1e-14, max_iter=500_000).fit(D, y).coef_


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_gram_lasso_matches_sklearn(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    rows, c = 150, 10
    D = rng.standard_normal((rows, c)) * rng.uniform(0.2, 3.0, c)
    y = D @ rng.standard_normal(c) + 0.3 * rng.standard_normal(rows)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-13, max_iter=200_000).fit(D, y).coef_
    ours = lasso_gram(D.T @ D, D.T @ y, alpha * rows)
    np.testing.assert_allclose(ours, ref, atol=1e-7)
    assert set(np.flatnonzero(ours)) == set(np.flatnonzero(ref))


@pytest.mark.parametrize("seed", [0, 1])
def test_polished_solution_is_exact_on_a_correlated_design(seed: int) -> None:
    """Where descent alone creeps (correlated columns), the feature-sign step lands on the exact minimiser:
    the same coefficients as scikit-learn run to a tight tolerance, far closer than descent's own stop."""
    D, y = design(seed, 200, 60, shared=2.0)
    lam = 0.2 * float(np.abs(D.T @ y).max())
    ref = sklearn_lasso(D, y, lam)
    ours = lasso_gram(D.T @ D, D.T @ y, lam, max_sweeps=30)
    np.testing.assert_allclose(ours, ref, atol=1e-6 * float(np.abs(ref).max()))
    assert set(np.flatnonzero(ours)) == set(np.flatnonzero(ref))


def test_polish_refuses_a_support_that_is_not_optimal() -> None:
    """A support missing a needed column fails KKT off the support, and the column joins for the next step (a
    few feature-sign steps then reach the solution); a wrong sign moves towards the minimiser and drops the
    coefficient that crosses zero."""
    D, y = design(4, 300, 8, shared=0.0)
    Q, q = D.T @ D, D.T @ y
    lam = 0.05 * float(np.abs(q).max())
    exact = lasso_gram(Q, q, lam)
    assert polish(Q, q, lam, exact)[1]
    big = int(np.argmax(np.abs(exact)))
    missing = exact.copy()
    missing[big] = 0.0
    joined, ok = polish(Q, q, lam, missing)
    assert not ok and np.sign(joined[big]) == np.sign(exact[big])  # the violator joins, with the sign that helps
    for _ in range(4):  # feature-sign steps alone (no descent) reach the solution
        joined, ok = polish(Q, q, lam, joined)
        if ok:
            break
    assert ok
    np.testing.assert_allclose(joined, exact, atol=1e-8 * np.abs(exact).max())
    flipped = exact.copy()
    small = int(np.flatnonzero(exact)[np.argmin(np.abs(exact[exact != 0]))])
    flipped[small] = -flipped[small]
    moved, ok = polish(Q, q, lam, flipped)
    assert not ok and moved[small] == 0.0
    assert objective(Q, q, lam, moved) < objective(Q, q, lam, flipped)  # a descent step


def objective(Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray) -> float:
    return float(0.5 * beta @ Q @ beta - q @ beta + lam * np.abs(beta).sum())


def test_segment_brackets_the_lam_where_the_support_stays() -> None:
    """Inside (below, above) the exact solution keeps its support; just past either end it changes (LARS knots)."""
    D, y = design(5, 400, 30, shared=0.5)
    Q, q = D.T @ D, D.T @ y
    lam = 0.1 * float(np.abs(q).max())
    beta = lasso_gram(Q, q, lam)
    below, above = segment(Q, q, lam, beta)
    assert 0 < below < lam < above
    support = set(np.flatnonzero(beta))
    for inside in (below * 1.001, above * 0.999):
        assert set(np.flatnonzero(lasso_gram(Q, q, inside))) == support
    for outside in (below * 0.999, above * 1.001):
        assert set(np.flatnonzero(lasso_gram(Q, q, outside))) != support


@pytest.mark.parametrize("keep", [1, 4, 9])
def test_select_exact_keeps_exactly_and_matches_the_lasso_support(keep: int) -> None:
    rng = np.random.default_rng(keep)
    D = rng.standard_normal((200, 12))
    y = D @ rng.standard_normal(12)
    beta, kept = select_exact(D.T @ D, D.T @ y, keep)
    assert len(kept) == keep and list(kept) == sorted(kept)
    assert set(kept) == set(np.flatnonzero(beta))  # the bisection lands on exactly `keep` non-zeros


@pytest.mark.parametrize("c, seed", [(40, 0), (120, 1), (200, 2)])
def test_select_exact_is_the_reference_lasso_support(c: int, seed: int) -> None:
    """The kept set is scikit-learn's LASSO support at the lam the search stopped at (a well-conditioned design)."""
    D, y = design(seed, 3 * c, c)
    Q, q = D.T @ D, D.T @ y
    beta, kept = select_exact(Q, q, c // 2)
    lam = float(np.abs(q - Q @ beta)[kept].mean())  # on the support |q - Q beta| = lam (KKT)
    assert set(np.flatnonzero(sklearn_lasso(D, y, lam))) == set(kept)


def test_select_exact_never_keeps_a_removed_channel() -> None:
    """Channels already removed (zero rows and columns of Q) are never selected while others are left."""
    D, y = design(6, 300, 20)
    D[:, [3, 7, 11]] = 0.0
    _, kept = select_exact(D.T @ D, D.T @ y, 10)
    assert not {3, 7, 11} & set(kept)


def test_select_exact_prefers_informative_columns() -> None:
    rng = np.random.default_rng(5)
    D = rng.standard_normal((300, 8))
    y = 3 * D[:, 2] - 2 * D[:, 6] + 0.01 * rng.standard_normal(300)
    _, kept = select_exact(D.T @ D, D.T @ y, 2)
    assert list(kept) == [2, 6]


def test_inexact_descent_falls_by_8_then_stops_at_a_3e_1_bracket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where descent cannot reach the exact solution (near-singular Grams), the count at a lam is descent noise:
    lam falls by 8 per step (each solve costs its whole budget wherever it lands), each solve gets 50 sweeps of
    descent alone (no feature-sign step), and the search stops once the bracket is within 0.3 (3 halvings of a factor-8
    bracket's log width), keeping the largest coefficients of the last solution with more than `keep`."""
    c, keep, threshold = 10, 5, 0.3
    calls: list[tuple[float, int, int]] = []

    def inexact(
        Q: np.ndarray,
        q: np.ndarray,
        lam: float,
        beta: np.ndarray,
        sweeps: int,
        tol: float,
        factor: object = None,
        give_up: int = lasso.GIVE_UP,
    ) -> tuple[np.ndarray, bool]:
        calls.append((lam, sweeps, give_up))  # never exactly `keep`: keep - 1 above the threshold, keep + 1 below
        count = keep + 1 if lam < threshold else keep - 1
        return np.where(np.arange(c) < count, np.arange(c, 0, -1, dtype=float), 0.0), False

    monkeypatch.setattr(lasso, "solve", inexact)
    _, kept = select_exact(np.eye(c), np.ones(c), keep)
    lams = [lam for lam, _, _ in calls]
    assert lams[:2] == [0.5, 0.5 / 8]  # the first solve, then a fall by 8 once it was inexact
    assert list(kept) == [0, 1, 2, 3, 4]  # the largest |beta| of the solution with keep + 1
    assert len(lams) - 2 == 3
    assert all(sweeps == 50 and give_up == 0 for _, sweeps, give_up in calls[1:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_step_past_a_knot_is_the_exact_solution_there(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the knot below (or above) an exact solution, the support is the old one with the knot's coefficient
    toggled, and one feature-sign step from it is the LASSO solution at that lam (no descent runs)."""

    def no_descent(*_: object, **__: object) -> None:
        raise AssertionError("past_knot fell back to descent")

    D, y = design(seed, 150, 30)
    Q, q = D.T @ D, D.T @ y
    lam = 0.2 * float(np.abs(q).max())
    beta = lasso_gram(Q, q, lam)
    for knot, step in zip(knots(Q, q, lam, beta), (1 - 1e-6, 1 + 1e-6), strict=True):
        assert knot is not None
        there = knot.lam * step
        with monkeypatch.context() as m:
            m.setattr(lasso, "solve", no_descent)
            moved, exact = past_knot(Q, q, there, beta, knot, Factor(Q))
        assert exact
        np.testing.assert_allclose(moved, lasso_gram(Q, q, there), atol=1e-8 * np.abs(beta).max())
        assert set(np.flatnonzero(moved)) ^ set(np.flatnonzero(beta)) == {knot.index}


def test_the_linearised_count_is_exact_up_to_the_first_knot_and_forecasts_beyond() -> None:
    """Between the knots around an exact solution the linearised path's count is the solution's; just past the
    knot below it is the exact path's; far beyond (a fall of 4, 13 -> 30 non-zeros on this correlated design)
    it forecasts the exact count within a few channels."""
    D, y = design(6, 600, 120)
    Q, q = D.T @ D, D.T @ y
    lam = 0.3 * float(np.abs(q).max())
    beta = lasso_gram(Q, q, lam)
    path = linear(Q, q, beta)
    below, above = segment(Q, q, lam, beta)
    for t in (below * 1.001, lam, above * 0.999):
        assert path.count(t) == np.count_nonzero(beta)
    assert path.count(below * 0.999) == np.count_nonzero(lasso_gram(Q, q, below * 0.999))
    far = np.count_nonzero(lasso_gram(Q, q, lam / 4))
    assert far - np.count_nonzero(beta) > 15
    assert abs(path.count(lam / 4) - far) <= 3


def test_aim_is_the_middle_of_the_range_where_the_line_keeps_exactly_keep() -> None:
    """Two coefficients reaching zero at t = 1 and t = 2 (count 2 below 1, 1 up to 2, 0 above) and an off-support
    channel that never joins: keep = 1 is aimed at sqrt(1 * 2); outside [lo, hi] the nearer end."""
    path = Linear(
        support=np.array([0, 1]),
        sign=np.ones(2),
        a=np.array([1.0, 2.0]),
        d=np.ones(2),
        off=np.array([2]),
        u=np.zeros(1),
        v=np.array([0.5]),
    )
    assert [path.count(t) for t in (0.5, 1.5, 2.5)] == [2, 1, 0]
    assert aim(path, 1, 0.1, 10.0) == pytest.approx(np.sqrt(2.0), rel=1e-9)
    assert aim(path, 1, 3.0, 10.0) == 3.0  # fewer than keep even at lo
    assert aim(path, 1, 0.1, 0.5) == 0.5  # more than keep even at hi


def test_along_the_segment_is_the_exact_solution_before_the_next_knot() -> None:
    D, y = design(3, 150, 30)
    Q, q = D.T @ D, D.T @ y
    lam = 0.2 * float(np.abs(q).max())
    beta = lasso_gram(Q, q, lam)
    below, _ = segment(Q, q, lam, beta)
    to = 0.5 * (lam + below)  # between lam and the next knot down: the same support and signs
    np.testing.assert_allclose(linear(Q, q, beta).moved(to), lasso_gram(Q, q, to), atol=1e-8 * np.abs(beta).max())


def test_load_readies_every_compiled_loop_for_the_types_a_selection_passes() -> None:
    """In a fresh process, after load() a whole selection (joins, leaves, knots) adds no compiled signature:
    the first group's LASSO clock then counts solving, not numba reading its cache."""
    script = """
import numpy as np
from numba.core.registry import CPUDispatcher
from cplitool.toolchain.prune import cholesky, lasso
loops = list({id(f): f for m in (lasso, cholesky) for f in vars(m).values() if isinstance(f, CPUDispatcher)}.values())
lasso.load()
loaded = {f.__name__: len(f.signatures) for f in loops}
rng = np.random.default_rng(0)
D = rng.standard_normal((400, 120)) + 0.8 * rng.standard_normal((400, 1))
lasso.select_exact(D.T @ D, D.T @ (D[:, :30] @ rng.standard_normal(30)), 37)
print(len(loops), all(n == 1 for n in loaded.values()), loaded == {f.__name__: len(f.signatures) for f in loops})
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["6", "True", "True"]
