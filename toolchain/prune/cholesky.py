"""An updatable Cholesky factor of Q's principal submatrix on a set of channels, for the LASSO's feature-sign steps.

Successive feature-sign steps and path knots change the support by one or a few channels; refactoring Q_SS
from scratch costs s^3/3 each time (60 ms at s = 1,432 on one core), an update s^2. Channels join at the end
(one triangular solve) and leave by deleting their row and column, which leaves a rank-one update of the
trailing block (the LINPACK rotations). The factor is kept in the order channels joined, not sorted.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numba import njit

REFACTOR_AFTER = 64  # updates between two factorisations from scratch (rounding in the rotations accumulates)
PIVOT_FLOOR = 1e-12  # a joining channel whose new pivot^2 is below this share of its Q_jj is (numerically)
# dependent on the support: Q_SS is singular there and the factor refuses it


@njit(cache=True, nogil=True)
def _forward(R: np.ndarray, n: int, a: np.ndarray) -> None:
    """a <- R^-T a (R upper, n x n used): a column-oriented forward substitution reading R by rows."""
    for m in range(n):
        a[m] /= R[m, m]
        w = a[m]
        for j in range(m + 1, n):
            a[j] -= w * R[m, j]


@njit(cache=True, nogil=True)
def _backward(R: np.ndarray, n: int, y: np.ndarray) -> None:
    """y <- R^-1 y."""
    for i in range(n - 1, -1, -1):
        acc = y[i]
        for j in range(i + 1, n):
            acc -= R[i, j] * y[j]
        y[i] = acc / R[i, i]


@njit(cache=True, nogil=True)
def _delete(R: np.ndarray, n: int, k: int) -> None:
    """Remove row and column k from the factor of an n x n matrix: shift, then the rank-one update
    R33^T R33 + x x^T of the trailing block with x = R[k, k+1:n] (the removed row's off-diagonal part)."""
    x = R[k, k + 1 : n].copy()
    for i in range(k):
        for j in range(k, n - 1):
            R[i, j] = R[i, j + 1]
    for i in range(k, n - 1):
        for j in range(i, n - 1):
            R[i, j] = R[i + 1, j + 1]
    for i in range(k, n - 1):
        xi = x[i - k]
        d = R[i, i]
        r = np.sqrt(d * d + xi * xi)
        c, s = r / d, xi / d
        R[i, i] = r
        for j in range(i + 1, n - 1):
            R[i, j] = (R[i, j] + s * x[j - k]) / c
            x[j - k] = c * x[j - k] - s * R[i, j]


@njit(cache=True, nogil=True)
def _append(R: np.ndarray, n: int, a: np.ndarray, diag: float) -> bool:
    """Add a last row and column to the factor: Q_Sj = a (in factor order), Q_jj = diag. False when the new
    pivot is not positive beyond rounding (the channel is a combination of the support's)."""
    w = a.copy()
    _forward(R, n, w)
    pivot = diag - np.dot(w, w)
    if pivot <= PIVOT_FLOOR * diag:
        return False
    for i in range(n):
        R[i, n] = w[i]
    R[n, n] = np.sqrt(pivot)
    return True


@njit(cache=True, nogil=True)
def combine(Q: np.ndarray, order: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Q[:, order] @ b, read as rows of the symmetric Q (contiguous): the correlations of every channel with the
    support's combination, without gathering a (c, s) block."""
    out = np.zeros(Q.shape[0])
    for m in range(len(order)):
        w = b[m]
        row = order[m]
        for j in range(Q.shape[0]):
            out[j] += w * Q[row, j]
    return out


class Factor:
    """R^T R = Q[order, order] for the current support, kept in join order; `fit` moves it to another support."""

    def __init__(self, Q: np.ndarray) -> None:
        c = Q.shape[0]
        self.Q = Q
        self.R = np.empty((c, c))
        self.order = np.empty(c, dtype=np.int64)
        self.n = 0
        self.updates = 0

    @property
    def support(self) -> np.ndarray:
        """The factored channels, in factor order."""
        return self.order[: self.n]

    def fit(self, support: np.ndarray) -> bool:
        """Factor Q on `support` (any order), by updates when it differs from the current one in a few channels,
        else from scratch. False when Q is singular there."""
        inside = np.zeros(self.Q.shape[0], dtype=bool)
        inside[support] = True
        current = self.support
        leave = np.flatnonzero(~inside[current])
        held = np.zeros_like(inside)
        held[current] = True
        join = support[~held[support]]
        changes = len(leave) + len(join)
        if changes == 0:
            return True
        if self.updates + changes > REFACTOR_AFTER or changes > max(4, self.n // 8):
            return self.refactor(np.sort(support))
        for k in leave[::-1]:  # from the back, so that earlier positions stay valid
            _delete(self.R, self.n, int(k))
            self.order[k : self.n - 1] = self.order[k + 1 : self.n]
            self.n -= 1
        for j in join:
            if not _append(self.R, self.n, self.Q[j, self.support], float(self.Q[j, j])):
                return self.refactor(np.sort(support))
            self.order[self.n] = j
            self.n += 1
        self.updates += changes
        return True

    def refactor(self, support: np.ndarray) -> bool:
        self.n = self.updates = 0
        if not len(support):
            return True
        try:
            upper, _ = scipy.linalg.cho_factor(self.Q[np.ix_(support, support)], check_finite=False)
        except np.linalg.LinAlgError:
            return False
        s = len(support)
        self.R[:s, :s] = upper
        self.order[:s] = support
        self.n = s
        return True

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Q[order, order]^-1 rhs (rhs in factor order)."""
        x = np.array(rhs, dtype=np.float64)
        _forward(self.R, self.n, x)
        _backward(self.R, self.n, x)
        return x
