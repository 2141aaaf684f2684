"""The Gram-form LASSO equals scikit-learn's Lasso on the explicitly built design."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso

from cplitool.toolchain.prune.lasso import lasso_gram, select_exact


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_gram_lasso_matches_sklearn(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    rows, c = 150, 10
    D = rng.standard_normal((rows, c)) * rng.uniform(0.2, 3.0, c)
    y = D @ rng.standard_normal(c) + 0.3 * rng.standard_normal(rows)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-13, max_iter=200_000).fit(D, y).coef_
    # sklearn minimises 1/(2N)||y - D b||^2 + alpha|b|_1, i.e. the Gram form with lam = N * alpha
    ours = lasso_gram(D.T @ D, D.T @ y, alpha * rows)
    np.testing.assert_allclose(ours, ref, atol=1e-7)
    assert set(np.flatnonzero(ours)) == set(np.flatnonzero(ref))


@pytest.mark.parametrize("keep", [1, 4, 9])
def test_select_exact_keeps_exactly_and_matches_the_lasso_support(keep: int) -> None:
    rng = np.random.default_rng(keep)
    D = rng.standard_normal((200, 12))
    y = D @ rng.standard_normal(12)
    beta, kept = select_exact(D.T @ D, D.T @ y, keep)
    assert len(kept) == keep and list(kept) == sorted(kept)
    if np.count_nonzero(beta) == keep:  # bisection landed exactly: the kept set is the LASSO's support
        assert set(kept) == set(np.flatnonzero(beta))


def test_select_exact_prefers_informative_columns() -> None:
    rng = np.random.default_rng(5)
    D = rng.standard_normal((300, 8))
    y = 3 * D[:, 2] - 2 * D[:, 6] + 0.01 * rng.standard_normal(300)
    _, kept = select_exact(D.T @ D, D.T @ y, 2)
    assert list(kept) == [2, 6]
