"""LASSO in Gram form: min_beta 1/2 beta^T Q beta - q^T beta + lam ||beta||_1, and CP's exact-count selection.

Channel selection only ever needs Q = D^T D and q = D^T y of the (never built) design D, so a sweep costs
O(c^2) at most whatever the number of sampled rows. Coordinate descent runs compiled (numba): the same
cyclic updates, in the same order, as a plain Python loop, at the speed of a C loop. Every few sweeps the
support found so far is polished: the minimiser restricted to that support and its signs is one Cholesky
solve, and when it keeps the signs and satisfies the optimality (KKT) conditions off the support it IS the
LASSO solution, so descent stops there instead of creeping towards it on ill-conditioned Grams (post-ReLU
features are strongly correlated). The Cholesky factor is carried from step to step and updated as channels
join and leave (cholesky.py). `select_exact` searches lam until exactly `keep` coefficients are non-zero: each
step aims where the path, linearised at the last exact solution, reaches `keep` (on real Grams within a percent
of the lam, from half the channels away), then the exact path's knots, each one feature-sign step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from cplitool.toolchain.prune import cholesky
from cplitool.toolchain.prune.cholesky import Factor, blas, blas_threads, combine

CHUNK = 10  # sweeps between two polishing attempts
GIVE_UP = 4  # failed feature-sign steps after which one lam is left to descent alone (a near-singular support)
DESCENT = 2.0  # lam falls by at most this factor per step until `keep` or more coefficients are non-zero
MIN_FALL = 1.001  # and by at least this factor (the aimed step is trusted: a forecast that falls short is
# followed by one from nearer)
INEXACT_FALL = 8.0  # the step once descent no longer reaches the exact solution: each solve then costs its whole
# sweep budget wherever it lands, and the count there moves slowly (EfficientNet-B0, MobileNetV2: 5-10 channels a
# halving over 20 halvings)
INEXACT_SWEEPS = 50  # sweeps per lam there: more do not converge either, and change which of the (equally
# good) supports is found, not how good it is (benchmark Grams of MobileNetV2 and EfficientNet-B0: the kept sets'
# least-squares objectives within 3e-4 of the 300-sweep search's, where a random set of `keep` is within 3e-4 too)
KKT_SLACK = 1e-9  # relative slack on |q_j - (Q beta)_j| <= lam off the support (float64 round-off)
WALK = 3  # within this many coefficients of `keep`, step knot by knot along the exact path
INEXACT_BRACKET = 0.3  # bisection stops at this relative bracket once descent no longer reaches the exact
# solution: there the count at a lam is the descent's progress from its warm start, not a property of lam (1e-1
# before: on EfficientNet-B0's Grams two more solves each for 4 of 40 other kept sets, least-squares objectives
# within 1e-5 of each other, where a random set of `keep` is within 2e-5)
KNOT_STEP = 1e-6  # relative step past a knot (the next segment is usually far longer)
FEATURE_SIGN = 4  # feature-sign steps in a row after a descent chunk while each joins the channels that violate
# KKT: on well-conditioned real Grams a failed step has missed a few, and the next, with them joined, is usually
# exact; a step that drops a flipping coefficient (one at a time) hands back to descent
ACTIVATE = 1e-9  # a violator joins with this share of the largest coefficient, signed to lower the objective
AIM_STEPS = 40  # bisection steps on log lam for the lam the linearised path puts at `keep`
AIM_MARGIN = 0.05  # inside a bracket, aimed lams keep this share of its log width off either end, so that
# every step shrinks it


@dataclass
class Clock:
    """Seconds spent in select_exact in this process. A prune reads it around each stage or group, so its
    report can say how much of the solve phase is the LASSO itself (the rest: objective, refit, surgery)."""

    seconds: float = 0.0


CLOCK = Clock()


def load() -> float:
    """Load the compiled loops once in this process (numba reads its cache: about 0.2 s) and return the seconds
    it took. A prune calls it before its first group, so that the LASSO's clock counts solving only; the prune
    reports the load on its own."""
    start = time.perf_counter()
    _sweeps(np.eye(2), 0.1, np.zeros(2), np.ones(2), 1, 1e-9)
    cholesky.load()
    return time.perf_counter() - start


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


def polish(
    Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray, factor: Factor | None = None
) -> tuple[np.ndarray, bool]:
    """One feature-sign step (Lee et al., NIPS 2006): the minimiser b of the objective on beta's support with
    beta's signs is one Cholesky solve. (b, True) when b keeps the signs and satisfies KKT off the support: the
    exact LASSO solution. Where b keeps the signs but channels off the support violate KKT: (b with those joined
    at a tiny coefficient of the sign that lowers the objective, False), the next step's start. Otherwise (beta
    moved towards b as far as the signs allow, False): the coefficient whose sign would flip first drops out.
    Each a descent step. Q singular on the support: (beta itself, False). `factor`: the one of the previous
    step, updated to this support (see cholesky.py)."""
    factor = factor or Factor(Q)
    if not np.any(beta):
        return beta, float(np.abs(q).max()) <= lam * (1 + KKT_SLACK)
    if not factor.fit(np.flatnonzero(beta)):
        return beta, False
    support = factor.support.copy()
    sign = np.sign(beta[support])
    b = factor.solve(q[support] - lam * sign)
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
    residual = q - combine(Q, support, b)
    residual[support] = 0.0
    violators = np.flatnonzero(np.abs(residual) > lam * (1 + KKT_SLACK))
    moved[violators] = np.sign(residual[violators]) * np.abs(b).max() * ACTIVATE  # the next step's support
    return moved, not len(violators)


@dataclass
class Knot:
    """Where the exact path leaves a support: at `lam`, coefficient `index` leaves it (sign 0) or joins it with
    `sign`."""

    lam: float
    index: int
    sign: float


@dataclass
class Linear:
    """The path through an exact solution beta as if its support and signs held for every lam t (LARS's
    directions): beta_S(t) = a - t d with a = Q_SS^-1 q_S and d = Q_SS^-1 sign, and the off-support correlations
    q_j - Q_jS beta_S(t) = u + t v."""

    support: np.ndarray
    sign: np.ndarray
    a: np.ndarray
    d: np.ndarray
    off: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def count(self, t: float) -> int:
        """The non-zeros it predicts at t: support coefficients that keep their sign, off-support channels whose
        correlation exceeds t. Exact up to the first knot; beyond, a forecast (on ConvNeXt-T's largest Gram, from
        803 non-zeros it puts the lam of 1,432, 629 channels further on, within 1%)."""
        stay = np.count_nonzero(np.sign(self.a - t * self.d) == self.sign)
        return int(stay + np.count_nonzero(np.abs(self.u + t * self.v) > t))

    def moved(self, t: float) -> np.ndarray:
        """The solution moved along the path to t, coefficients that would change sign set to zero: exact up to
        the next knot, beyond it a warm start that descent only has to correct for the knots in between."""
        beta = np.zeros(len(self.support) + len(self.off))
        b = self.a - t * self.d
        beta[self.support] = np.where(np.sign(b) == self.sign, b, 0.0)
        return beta


def linear(Q: np.ndarray, q: np.ndarray, beta: np.ndarray, factor: Factor | None = None) -> Linear:
    """The linearised path through the exact solution beta (see Linear)."""
    factor = factor or Factor(Q)
    if not factor.fit(np.flatnonzero(beta)):
        raise np.linalg.LinAlgError("Q is singular on the support of an exact solution")
    support, off = factor.support.copy(), np.flatnonzero(beta == 0)
    sign = np.sign(beta[support])
    a, d = factor.solve(q[support]), factor.solve(sign)
    u, v = (q - combine(Q, support, a))[off], combine(Q, support, d)[off]
    return Linear(support, sign, a, d, off, u, v)


def knots(
    Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray, factor: Factor | None = None
) -> tuple[Knot | None, Knot | None]:
    """For the exact solution beta at lam: the knots (below, above) that end the range of lam over which its
    support and signs stay optimal (None: no knot that side), where the linearised path's coefficient reaches
    zero or an off-support correlation |u + t v| reaches t."""
    path = linear(Q, q, beta, factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        events = np.concatenate([path.a / path.d, path.u / (1 - path.v), -path.u / (1 + path.v)])
    off = path.off
    index = np.concatenate([path.support, off, off])
    sign = np.concatenate([np.zeros(len(path.support)), np.ones(len(off)), -np.ones(len(off))])
    valid = np.isfinite(events) & (events > 0)

    def nearest(side: np.ndarray, largest: bool) -> Knot | None:
        where = np.flatnonzero(side)
        if not where.size:
            return None
        i = int(where[np.argmax(events[where]) if largest else np.argmin(events[where])])
        return Knot(float(events[i]), int(index[i]), float(sign[i]))

    return nearest(valid & (events < lam * (1 - 1e-12)), True), nearest(valid & (events > lam * (1 + 1e-12)), False)


def aim(path: Linear, keep: int, lo: float, hi: float) -> float:
    """The lam in [lo, hi] at the middle (log scale) of the range where the linearised path has exactly `keep`
    non-zeros, found by bisection; lo where it predicts fewer even there, hi where it predicts more."""

    def edge(count: int) -> float:  # the largest t in [lo, hi] with at least `count` predicted non-zeros
        low, high = np.log(lo), np.log(hi)
        if path.count(hi) >= count:
            return hi
        if path.count(lo) < count:
            return lo
        for _ in range(AIM_STEPS):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if path.count(float(np.exp(mid))) >= count else (low, mid)
        return float(np.exp(low))

    return float(np.sqrt(edge(keep) * edge(keep + 1)))


def segment(Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray) -> tuple[float, float]:
    """The range (below, above) of lam over which the exact solution beta at lam keeps its support and signs."""
    below, above = knots(Q, q, lam, beta)
    return (below.lam if below else 0.0), (above.lam if above else np.inf)


def past_knot(
    Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray, knot: Knot, factor: Factor
) -> tuple[np.ndarray, bool]:
    """(solution just past `knot`, exact): the support and signs there are beta's with the knot's coefficient
    toggled, so one feature-sign step from them usually lands on the exact solution (no descent); otherwise
    descent takes over from there."""
    start = beta.copy()
    start[knot.index] = knot.sign * np.abs(beta).max() * ACTIVATE if knot.sign else 0.0
    moved, exact = polish(Q, q, lam, start, factor)
    return (moved, True) if exact else solve(Q, q, lam, moved, CHUNK * 30, 1e-9, factor)


def solve(
    Q: np.ndarray,
    q: np.ndarray,
    lam: float,
    beta: np.ndarray,
    max_sweeps: int,
    tol: float,
    factor: Factor | None = None,
    give_up: int = GIVE_UP,
) -> tuple[np.ndarray, bool]:
    """(solution at lam, whether it is exact): descent warm-started at beta in chunks of CHUNK sweeps, each
    followed by a feature-sign step, until a step lands on the exact solution; the descent's own result when
    its sweeps run out first, or when it converges after `give_up` steps have failed. Q and q float64,
    C-contiguous; `factor` carries the Cholesky factor from step to step."""
    factor = factor or Factor(Q)
    beta = beta.copy()
    support = np.flatnonzero(beta)
    grad = q - combine(Q, support, beta[support])
    done = failed = 0
    while done < max_sweeps:
        ran = _sweeps(Q, lam, beta, grad, min(CHUNK, max_sweeps - done), tol)
        done += ran
        if lam <= 0 or failed >= give_up:
            if ran < CHUNK:  # descent converged by its own test
                break
            continue
        for _ in range(FEATURE_SIGN if give_up > 1 else 1):
            moved, exact = polish(Q, q, lam, beta, factor)
            if exact:
                return moved, True
            joined = np.count_nonzero(moved) > np.count_nonzero(beta)  # else a flip dropped one, or Q is singular
            beta = moved
            if not joined:
                break
        failed += 1
        support = np.flatnonzero(beta)
        grad = q - combine(Q, support, beta[support])
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
    with blas().limit(limits=1, user_api="blas"):
        return solve(Q, q, float(lam), start, max_sweeps, tol)[0]


def select_exact(
    Q: np.ndarray, q: np.ndarray, keep: int, iters: int = 60, sweeps: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """(beta, kept indices sorted) with exactly `keep` channels (CP's recipe): lam falls from max|q| (at most by
    halves, aimed where the linearised path reaches `keep`) until `keep` or more coefficients are non-zero, then
    aims again inside that last step, and once the count is within WALK of `keep`, steps to the exact path's
    neighbouring knots. Warm starts throughout, moved along the path's segment, at most `sweeps`
    sweeps per lam. Where descent stops reaching the exact solution (near-singular Grams), falls of INEXACT_FALL,
    INEXACT_SWEEPS sweeps and bisection to INEXACT_BRACKET. If no lam gives exactly `keep` non-zeros, the
    largest |beta| at the nearest lam with more non-zeros are kept.

    BLAS runs on one thread here, but for factorisations of large supports: its other calls are small, and a
    second thread waiting for a busy core makes each of them cost milliseconds."""
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
    threads = blas_threads()
    with blas().limit(limits=1, user_api="blas"):
        more = _bracket_and_bisect(Q, q, keep, hi, iters, sweeps, threads)
    if int(np.count_nonzero(more)) == keep:
        return more, np.flatnonzero(more)
    order = np.argsort(-np.abs(more), kind="stable")
    return more, np.sort(order[:keep])


def _bracket_and_bisect(
    Q: np.ndarray, q: np.ndarray, keep: int, hi: float, iters: int, sweeps: int, threads: int
) -> np.ndarray:
    """The solution with exactly `keep` non-zeros, else the one at the nearest lam with more (select_exact);
    `threads` for the factorisations of large supports."""
    tol = 1e-9
    floor = hi * 1e-9
    factor = Factor(Q, threads)
    beta, exact = np.zeros_like(q), True
    lo, count = hi, 0
    lam, last = hi / DESCENT, hi

    def at(lam: float, beta: np.ndarray, path: Linear | None) -> tuple[np.ndarray, bool]:
        """The solution at lam: from where `path`, linearised through the last exact solution, leads. None where
        descent was inexact last time: from beta, its budget and descent alone; the regime does not end nearer
        the dense end, and there Q is singular on the supports descent finds (no feature-sign step landed in 238
        tries on the benchmark's MobileNetV2 and EfficientNet-B0 Grams; each cost a failed factorisation)."""
        if path is not None:
            return solve(Q, q, lam, path.moved(lam), sweeps, tol, factor)
        return solve(Q, q, lam, beta, min(sweeps, INEXACT_SWEEPS), tol, factor, give_up=0)

    path = linear(Q, q, beta, factor)
    for _ in range(iters):  # down the path from the sparse end, where solves are cheap and warm starts close
        lo = max(lam, floor)
        beta, exact = at(lo, beta, path if exact else None)
        count = int(np.count_nonzero(beta))
        if count >= keep:
            break
        if exact:  # where the linearised path reaches `keep`, falling by MIN_FALL to DESCENT
            path = linear(Q, q, beta, factor)
            lam = aim(path, keep, lo / DESCENT, lo / MIN_FALL)
        else:
            lam = lo / INEXACT_FALL
        hi, last = lo, lo
        if lo == floor:
            return beta  # no lam down to the floor keeps enough: the least regularised solution
    more = beta
    for _ in range(iters):
        if count == keep or hi <= lo * (1 + (1e-12 if exact else INEXACT_BRACKET)):
            break
        knot = None
        if exact and abs(count - keep) <= WALK:  # close: just past the neighbouring knot of the exact path
            knot = knots(Q, q, last, beta, factor)[0 if count < keep else 1]
            step = 1 - KNOT_STEP if count < keep else 1 + KNOT_STEP
            knot = knot if knot and lo < knot.lam * step < hi else None
        if knot is not None:
            lam = knot.lam * step
            beta, exact = past_knot(Q, q, lam, beta, knot, factor)
        elif exact:
            path = linear(Q, q, beta, factor)
            width = np.log(hi / lo)
            lam = aim(path, keep, lo * np.exp(AIM_MARGIN * width), hi * np.exp(-AIM_MARGIN * width))
            beta, exact = at(lam, beta, path)
        else:  # descent noise decides the count where it is inexact: halve the log bracket, no forecast from noise
            lam = float(np.sqrt(lo * hi))
            beta, exact = at(lam, beta, None)
        count, last = int(np.count_nonzero(beta)), lam
        if count >= keep:
            lo, more = lam, beta
        else:
            hi = lam
    return more
