"""An updatable Cholesky factor of Q's principal submatrix on a set of channels, for the LASSO's feature-sign steps.

Successive feature-sign steps and path knots change the support by one to a few dozen channels; refactoring Q_SS
from scratch costs s^3/3 each time (58 ms at s = 1,432 on one core), an update s^2 per channel. Channels join
at the end, all at once (one blocked triangular solve and the factor of their small Schur complement), and
leave by deleting their row and column, which leaves a rank-one update of the trailing block (the LINPACK
rotations). The factor is kept in the order channels joined, not sorted; `fit` refactors where the updates
would cost more.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext

import numpy as np
import scipy.linalg
from numba import njit
from threadpoolctl import ThreadpoolController

PARALLEL_FROM = 512  # supports from this size are factored on all the BLAS's threads (1,432: 42 -> 25 ms on
# two cores); smaller calls stay on one, where a second thread waiting for a busy core costs more than it saves
REFACTOR_AFTER = 64  # leaves between two factorisations from scratch (rounding in the rotations accumulates;
# joins add rows solved against the factor as it is, nothing that compounds)
LEAVE_COST = 16  # a leaving channel (rotations over the trailing block) costs about as much as 16 joining ones (a
# column of one blocked triangular solve); a factorisation from scratch as n / 3 joining ones (measured at
# n = 1,432 on one core: leave 1-2 ms, factorisation 58 ms with its gather)
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
    """Remove row and column k from the factor of an n x n matrix: the rows above k shift left; the trailing
    block, shifted up and left in the same pass, takes the rank-one update R33^T R33 + x x^T with
    x = R[k, k+1:n] (the removed row's off-diagonal part) by one rotation per row."""
    x = R[k, k + 1 : n].copy()
    for i in range(k):
        for j in range(k, n - 1):
            R[i, j] = R[i, j + 1]
    for i in range(k, n - 1):
        xi = x[i - k]
        d = R[i + 1, i + 1]
        r = np.sqrt(d * d + xi * xi)
        c, s = r / d, xi / d
        inverse = d / r  # 1 / c: a multiply per element, not a divide
        R[i, i] = r
        for j in range(i + 1, n - 1):
            new = (R[i + 1, j + 1] + s * x[j - k]) * inverse
            R[i, j] = new
            x[j - k] = c * x[j - k] - s * new
    return


@njit(cache=True, nogil=True)
def _forward_block(R: np.ndarray, n: int, A: np.ndarray) -> None:
    """A <- R^-T A for a block of columns (A: n x k, C order): R is read once for all k, where k separate
    substitutions would stream it from memory k times (four times faster at n = 1,432, k = 40)."""
    k = A.shape[1]
    for m in range(n):
        inverse = 1.0 / R[m, m]
        for t in range(k):
            A[m, t] *= inverse
        for j in range(m + 1, n):
            r = R[m, j]
            for t in range(k):
                A[j, t] -= r * A[m, t]


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


def load() -> None:
    """Load this module's compiled loops (numba reads its cache, or compiles), each on the argument types the
    factor passes them."""
    R, x = np.eye(2), np.ones(2)
    _forward(R, 2, x.copy())
    _backward(R, 2, x.copy())
    _forward_block(R, 2, np.ones((2, 1)))
    _delete(R.copy(), 2, 0)
    combine(R, np.arange(1), x[:1].copy())


@functools.cache
def blas() -> ThreadpoolController:
    """The BLAS libraries loaded, found once: limiting them through it costs microseconds, not a new scan."""
    return ThreadpoolController()


def blas_threads() -> int:
    """The BLAS's thread count as set now (before a caller limits it)."""
    return max((int(lib["num_threads"]) for lib in blas().select(user_api="blas").info()), default=1)


class Factor:
    """R^T R = Q[order, order] for the current support, kept in join order; `fit` moves it to another support.
    `threads`: the BLAS threads a factorisation from scratch of PARALLEL_FROM channels or more may use."""

    def __init__(self, Q: np.ndarray, threads: int = 1) -> None:
        c = Q.shape[0]
        self.Q = Q
        self.threads = threads
        self.R = np.empty((c, c))
        self.order = np.empty(c, dtype=np.int64)
        self.n = 0
        self.rotations = 0

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
        if not len(leave) and not len(join):
            return True
        if self.rotations + len(leave) > REFACTOR_AFTER or LEAVE_COST * len(leave) + len(join) > max(4.0, self.n / 3):
            return self.refactor(np.sort(support))
        for k in leave[::-1]:  # from the back, so that earlier positions stay valid
            _delete(self.R, self.n, int(k))
            self.order[k : self.n - 1] = self.order[k + 1 : self.n]
            self.n -= 1
        if len(join) and not self.join(join):
            return self.refactor(np.sort(support))
        self.rotations += len(leave)
        return True

    def join(self, channels: np.ndarray) -> bool:
        """Append channels at the end: W = R^-T Q_SJ, and the factor of the Schur complement Q_JJ - W^T W. False
        when a new pivot is not positive beyond rounding (a channel is a combination of the others): the factor
        is then left as it was."""
        n, k = self.n, len(channels)
        W = np.ascontiguousarray(self.Q[np.ix_(self.support, channels)])
        _forward_block(self.R, n, W)
        try:
            lower = np.linalg.cholesky(self.Q[np.ix_(channels, channels)] - W.T @ W)
        except np.linalg.LinAlgError:
            return False
        if np.any(np.diag(lower) ** 2 <= PIVOT_FLOOR * np.diag(self.Q)[channels]):
            return False
        self.R[:n, n : n + k] = W
        self.R[n : n + k, n : n + k] = lower.T
        self.order[n : n + k] = channels
        self.n += k
        return True

    def refactor(self, support: np.ndarray) -> bool:
        self.n = self.rotations = 0
        if not len(support):
            return True
        wide = len(support) >= PARALLEL_FROM and self.threads > 1
        try:
            with blas().limit(limits=self.threads, user_api="blas") if wide else nullcontext():
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
