"""The updatable Cholesky factor equals a factorisation from scratch after any sequence of joins and leaves."""

from __future__ import annotations

import numpy as np
import pytest

from cplitool.toolchain.prune import cholesky
from cplitool.toolchain.prune.cholesky import Factor, combine


def spd(c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((3 * c, c)) + 0.5 * rng.standard_normal((3 * c, 1))  # correlated columns
    return D.T @ D


def check(factor: Factor, Q: np.ndarray) -> None:
    order = factor.support
    R = np.triu(factor.R[: factor.n, : factor.n])
    np.testing.assert_allclose(R.T @ R, Q[np.ix_(order, order)], rtol=1e-10, atol=1e-9 * np.abs(Q).max())
    rhs = np.arange(1.0, factor.n + 1)
    np.testing.assert_allclose(Q[np.ix_(order, order)] @ factor.solve(rhs), rhs, rtol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_updates_equal_a_fresh_factorisation(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random walks of up to four channels leaving and up to six joining (one block), anywhere in the factor's
    order; no refactoring allowed, so every step is an update."""
    monkeypatch.setattr(cholesky, "REFACTOR_AFTER", 10**9)
    monkeypatch.setattr(cholesky, "LEAVE_COST", 0)
    c = 60
    Q = spd(c, seed)
    rng = np.random.default_rng(seed)
    support = np.sort(rng.choice(c, 30, replace=False))
    factor = Factor(Q)
    assert factor.fit(support)
    monkeypatch.setattr(Factor, "refactor", lambda *_: pytest.fail("refactored"))
    for _ in range(30):
        inside = set(support.tolist())
        outside = sorted(set(range(c)) - inside)
        leave = rng.choice(sorted(inside), min(int(rng.integers(0, 5)), len(inside) - 1), replace=False)
        join = rng.choice(outside, min(int(rng.integers(0, 7)), len(outside)), replace=False)
        support = np.array(sorted((inside - set(leave.tolist())) | set(join.tolist())))
        assert factor.fit(support)
        assert set(factor.support.tolist()) == set(support.tolist())
        check(factor, Q)


def test_leaving_the_first_and_the_last_channel() -> None:
    Q = spd(12, 3)
    factor = Factor(Q)
    assert factor.fit(np.arange(8))
    assert factor.fit(np.arange(1, 7))
    assert list(factor.support) == [1, 2, 3, 4, 5, 6]
    check(factor, Q)


def test_a_dependent_channel_is_factored_from_scratch_and_an_indefinite_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A channel that is a combination of the support's leaves a pivot at rounding level: it is not appended by an
    update (its tiny pivot would be rounding noise) but the whole support is factored from scratch, as before the
    updates existed; where Q_SS is not positive definite at all, fit says so."""
    scratch: list[int] = []
    refactor = Factor.refactor
    monkeypatch.setattr(
        Factor, "refactor", lambda self, support: scratch.append(len(support)) or refactor(self, support)
    )
    rng = np.random.default_rng(4)
    D = rng.standard_normal((30, 6))
    D = np.hstack([D, D[:, :2] @ np.array([[1.0], [2.0]])])  # column 6 = col 0 + 2 col 1
    Q = D.T @ D
    factor = Factor(Q)
    assert factor.fit(np.arange(6))
    assert factor.fit(np.arange(7))
    assert factor.n == 7 and scratch == [6, 7]  # the join refused, the whole support factored
    Q[6, 6] *= 0.5  # below what columns 0 and 1 already explain: Q_SS indefinite
    factor = Factor(Q)
    assert factor.fit(np.arange(6))
    assert not factor.fit(np.arange(7))
    assert factor.n == 0


def test_combine_is_the_product_with_the_support_columns() -> None:
    Q = spd(15, 5)
    order = np.array([7, 2, 11])
    b = np.array([0.5, -2.0, 3.0])
    np.testing.assert_allclose(combine(Q, order, b), Q[:, order] @ b)
