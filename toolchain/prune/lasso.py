"""LASSO in Gram form: min_beta 1/2 beta^T Q beta - q^T beta + lam ||beta||_1, by coordinate descent.

Channel selection only ever needs Q = D^T D and q = D^T y of the (never built) design D, so a sweep
costs O(c^2) whatever the number of sampled rows. `select_exact` raises lam by bisection until
exactly the requested number of coefficients are non-zero (CP's recipe).
"""

from __future__ import annotations

import numpy as np


def lasso_gram(
    Q: np.ndarray,
    q: np.ndarray,
    lam: float,
    beta: np.ndarray | None = None,
    max_sweeps: int = 2000,
    tol: float = 1e-9,
) -> np.ndarray:
    """Coordinate descent with an active set: full sweeps alternate with sweeps over the non-zeros only.
    Stops when a full sweep changes no coefficient by more than tol * max|beta|."""
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    beta = np.zeros_like(q) if beta is None else beta.astype(np.float64).copy()
    grad = q - Q @ beta  # q - Q beta, kept up to date
    diag = np.diag(Q).tolist()
    positive = np.diag(Q) > 0
    full = True
    for _ in range(max_sweeps):
        idx = np.flatnonzero(positive) if full else np.flatnonzero((beta != 0) & positive)
        change = 0.0
        for i in idx.tolist():  # plain floats: numpy scalars would dominate the cost
            old = float(beta[i])
            rho = float(grad[i]) + diag[i] * old
            shrunk = abs(rho) - lam
            new = (shrunk if rho > 0 else -shrunk) / diag[i] if shrunk > 0 else 0.0
            if new != old:
                grad -= (new - old) * Q[i]
                beta[i] = new
                change = max(change, abs(new - old))
        converged = change <= tol * max(float(np.abs(beta).max()), 1e-300)
        if converged and full:
            break
        full = converged  # after the active set settles, check every coordinate again
    return beta


def select_exact(
    Q: np.ndarray, q: np.ndarray, keep: int, iters: int = 40, sweeps: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """(beta, kept indices sorted) with exactly `keep` channels: bisection on lam (log scale, warm starts,
    at most `sweeps` sweeps per lam: only the support's size matters here); if no lam gives exactly
    `keep` non-zeros, the largest |beta| at the nearest lam with more non-zeros are kept."""
    c = len(q)
    if keep >= c:
        return lasso_gram(Q, q, 0.0, max_sweeps=sweeps), np.arange(c)
    hi = float(np.abs(q).max())  # at lam >= max|q| every coefficient is zero
    if hi == 0.0:
        return np.zeros(c), np.arange(keep)
    lo = hi * 1e-9
    beta_lo = lasso_gram(Q, q, lo, max_sweeps=sweeps)
    beta = beta_lo
    for _ in range(iters):
        mid = float(np.sqrt(lo * hi))
        beta = lasso_gram(Q, q, mid, beta, max_sweeps=sweeps)
        count = int(np.count_nonzero(beta))
        if count == keep:
            beta_lo = beta
            break
        if count > keep:
            lo, beta_lo = mid, beta
        else:
            hi = mid
    order = np.argsort(-np.abs(beta_lo), kind="stable")
    return beta_lo, np.sort(order[:keep])
