"""LASSO in Gram form: min_beta 1/2 beta^T Q beta - q^T beta + lam ||beta||_1, and CP's exact-count selection.

Channel selection only ever needs Q = D^T D and q = D^T y of the (never built) design D, so a sweep costs
O(c^2) at most whatever the number of sampled rows. Coordinate descent runs compiled (numba): the same
cyclic updates, in the same order, as a plain Python loop, at the speed of a C loop. Every few sweeps the
support found so far is polished: the minimiser restricted to that support and its signs is one Cholesky
solve, and when it keeps the signs and satisfies the optimality (KKT) conditions off the support it IS the
LASSO solution, so descent stops there instead of creeping towards it on ill-conditioned Grams (post-ReLU
features are strongly correlated). `select_exact` bisects lam until exactly `keep` coefficients are non-zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numba import njit
from threadpoolctl import threadpool_limits

CHUNK = 10  # sweeps between two polishing attempts
GIVE_UP = 4  # failed feature-sign steps after which one lam is left to descent alone (a near-singular support)
DESCENT = 2.0  # lam falls by this factor per step until more than `keep` coefficients are non-zero
KKT_SLACK = 1e-9  # relative slack on |q_j - (Q beta)_j| <= lam off the support (float64 round-off)
WALK = 8  # within this many coefficients of `keep`, step knot by knot along the exact path
INEXACT_BRACKET = 1e-2  # bisection stops at this relative bracket once descent no longer reaches the exact
# solution: there the count at a lam is the descent's progress from its warm start, not a property of lam
# (whole EfficientNet-B0 and ConvNeXt-T prunes: bitwise the same weights as at 1e-6; EfficientNet's solve 1.8x faster)
KNOT_STEP = 1e-6  # relative step past a knot (the next segment is usually far longer)


@dataclass
class Clock:
    """Seconds spent in select_exact in this process. A prune reads it around each stage or group, so its
    report can say how much of the solve phase is the LASSO itself (the rest: objective, refit, surgery)."""

    seconds: float = 0.0


CLOCK = Clock()


@njit(cache=True, nogil=True)
def _sweeps(Q: np.ndarray, lam: float, beta: np.ndarray, grad: np.ndarray, max_sweeps: int, tol: float) -> int:
    """Cyclic coordinate descent in place on beta and grad = q - Q beta, with an active set: full sweeps
    alternate with sweeps over the non-zeros only. Returns the sweeps run, fewer than max_sweeps when a full
    sweep changed no coefficient by more than tol * max|beta|."""
    c = beta.shape[0]
    full = True
    for sweep in range(max_sweeps):
        change = 0.0
        for i in range(c):
            d = Q[i, i]
            old = beta[i]
            if d <= 0.0 or (not full and old == 0.0):
                continue
            rho = grad[i] + d * old
            new = (rho - lam) / d if rho > lam else ((rho + lam) / d if rho < -lam else 0.0)
            if new != old:
                delta = new - old
                for j in range(c):
                    grad[j] -= delta * Q[i, j]
                beta[i] = new
                change = max(change, abs(delta))
        largest = 0.0
        for i in range(c):
            largest = max(largest, abs(beta[i]))
        converged = change <= tol * max(largest, 1e-300)
        if converged and full:
            return sweep + 1
        full = converged  # after the active set settles, check every coordinate again
    return max_sweeps


def polish(Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray) -> tuple[np.ndarray, bool]:
    """One feature-sign step (Lee et al., NIPS 2006): the minimiser b of the objective on beta's support with
    beta's signs is one Cholesky solve. (b, True) when b keeps the signs and satisfies KKT off the support: the
    exact LASSO solution. Otherwise (beta moved towards b as far as the signs allow, False): a descent step, and
    the coefficient whose sign would flip first drops out. Q singular on the support: (beta, False)."""
    support = np.flatnonzero(beta)
    if len(support) == 0:
        return beta, float(np.abs(q).max()) <= lam * (1 + KKT_SLACK)
    sign = np.sign(beta[support])
    try:
        factor = scipy.linalg.cho_factor(Q[np.ix_(support, support)], check_finite=False)
    except np.linalg.LinAlgError:
        return beta, False
    b = scipy.linalg.cho_solve(factor, q[support] - lam * sign, check_finite=False)
    moved = np.zeros_like(q)
    flips = np.flatnonzero(np.sign(b) != sign)
    if len(flips):
        current = beta[support]
        steps = current[flips] / (current[flips] - b[flips])  # where each flipping coefficient crosses zero
        first = int(np.argmin(steps))
        moved[support] = current + steps[first] * (b - current)
        moved[support[flips[first]]] = 0.0
        return moved, False
    moved[support] = b
    off = np.ones(len(q), dtype=bool)
    off[support] = False
    residual = q[off] - Q[np.ix_(off, support)] @ b
    return moved, not residual.size or float(np.abs(residual).max()) <= lam * (1 + KKT_SLACK)


def segment(Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray) -> tuple[float, float]:
    """For the exact solution beta at lam: the range (below, above) of lam over which its support and signs stay
    optimal. On it the path is linear, beta_S(t) = a - t d with a = Q_SS^-1 q_S and d = Q_SS^-1 sign; it ends
    where a coefficient reaches zero or an off-support |q_j - Q_jS beta_S(t)| reaches t (LARS's knots)."""
    support = np.flatnonzero(beta)
    off = np.ones(len(q), dtype=bool)
    off[support] = False
    if len(support):
        factor = scipy.linalg.cho_factor(Q[np.ix_(support, support)], check_finite=False)
        a = scipy.linalg.cho_solve(factor, q[support], check_finite=False)
        d = scipy.linalg.cho_solve(factor, np.sign(beta[support]), check_finite=False)
        cross = Q[np.ix_(off, support)]
        u, v = q[off] - cross @ a, cross @ d  # off-support correlations: u + t v
    else:
        a = d = np.zeros(0)
        u, v = q[off], np.zeros(int(off.sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        events = np.concatenate([a / d, u / (1 - v), -u / (1 + v)])
    events = events[np.isfinite(events) & (events > 0)]
    below = events[events < lam * (1 - 1e-12)]
    above = events[events > lam * (1 + 1e-12)]
    return (float(below.max()) if below.size else 0.0), (float(above.min()) if above.size else np.inf)


def solve(
    Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray, max_sweeps: int, tol: float
) -> tuple[np.ndarray, bool]:
    """(solution at lam, whether it is exact): descent warm-started at beta in chunks of CHUNK sweeps, each
    followed by a feature-sign step, until a step lands on the exact solution; the descent's own result when
    its sweeps run out first, or when it converges after GIVE_UP steps have failed. Q and q float64,
    C-contiguous."""
    beta = beta.copy()
    grad = q - Q @ beta
    done = failed = 0
    while done < max_sweeps:
        ran = _sweeps(Q, lam, beta, grad, min(CHUNK, max_sweeps - done), tol)
        done += ran
        if lam <= 0 or failed >= GIVE_UP:
            if ran < CHUNK:  # descent converged by its own test
                break
            continue
        beta, exact = polish(Q, q, lam, beta)
        if exact:
            return beta, True
        failed += 1
        grad = q - Q @ beta
    return beta, False


def lasso_gram(
    Q: np.ndarray,
    q: np.ndarray,
    lam: float,
    beta: np.ndarray | None = None,
    max_sweeps: int = 2000,
    tol: float = 1e-9,
) -> np.ndarray:
    """The LASSO solution at lam, warm-started at beta (see `solve`)."""
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    start = np.zeros_like(q) if beta is None else np.asarray(beta, dtype=np.float64)
    with threadpool_limits(1):
        return solve(Q, q, float(lam), start, max_sweeps, tol)[0]


def select_exact(
    Q: np.ndarray, q: np.ndarray, keep: int, iters: int = 60, sweeps: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """(beta, kept indices sorted) with exactly `keep` channels (CP's recipe): lam falls from max|q| by halves
    until more than `keep` coefficients are non-zero, then bisection (log scale) inside that last step, and
    once the count is within WALK of `keep`, steps to the exact path's neighbouring knots. Warm starts
    throughout, at most `sweeps` sweeps per lam. If no lam gives exactly `keep` non-zeros, the largest |beta|
    at the nearest lam with more non-zeros are kept.

    BLAS runs on one thread here: its calls are small, and a second thread waiting for a busy core makes each of
    them cost milliseconds."""
    start = time.perf_counter()
    try:
        return _select_exact(Q, q, keep, iters, sweeps)
    finally:
        CLOCK.seconds += time.perf_counter() - start


def _select_exact(Q: np.ndarray, q: np.ndarray, keep: int, iters: int, sweeps: int) -> tuple[np.ndarray, np.ndarray]:
    c = len(q)
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    if keep >= c:
        return lasso_gram(Q, q, 0.0, max_sweeps=sweeps), np.arange(c)
    hi = float(np.abs(q).max())  # at lam >= max|q| every coefficient is zero
    if hi == 0.0:
        return np.zeros(c), np.arange(keep)
    with threadpool_limits(1):
        more = _bracket_and_bisect(Q, q, keep, hi, iters, sweeps)
    if int(np.count_nonzero(more)) == keep:
        return more, np.flatnonzero(more)
    order = np.argsort(-np.abs(more), kind="stable")
    return more, np.sort(order[:keep])


def _bracket_and_bisect(Q: np.ndarray, q: np.ndarray, keep: int, hi: float, iters: int, sweeps: int) -> np.ndarray:
    """The solution with exactly `keep` non-zeros, else the one at the nearest lam with more (select_exact)."""
    tol = 1e-9
    floor = hi * 1e-9
    beta, exact = np.zeros_like(q), False
    lo = hi
    for _ in range(iters):  # down the path from the sparse end, where solves are cheap and warm starts close
        lo = max(lo / DESCENT, floor)
        beta, exact = solve(Q, q, lo, beta, sweeps, tol)
        count = int(np.count_nonzero(beta))
        if count >= keep:
            break
        hi = lo
        if lo == floor:
            return beta  # no lam down to the floor keeps enough: the least regularised solution
    more, at = beta, lo  # `at`: the lam of beta
    for _ in range(iters):
        if count == keep or hi <= lo * (1 + (1e-12 if exact else INEXACT_BRACKET)):
            break
        lam = float(np.sqrt(lo * hi))
        if exact and abs(count - keep) <= WALK:  # close: just past the neighbouring knot of the exact path
            below, above = segment(Q, q, at, beta)
            knot = below * (1 - KNOT_STEP) if count < keep else above * (1 + KNOT_STEP)
            lam = knot if lo < knot < hi else lam
        beta, exact = solve(Q, q, lam, beta, sweeps, tol)
        count, at = int(np.count_nonzero(beta)), lam
        if count >= keep:
            lo, more = lam, beta
        else:
            hi = lam
    return more
