"""One CPLI stage in Gram form: the augmented LASSO's Q and q, channel selection, and the weight refit.

Notation (docs/method.md, a reconstruction of the paper's method): the consumer conv has
c input channels, kernel size k, n outputs; W is (n, c*k). P = X^T X is (c*k, c*k), XtY = X^T Y.
  Q_ii' = <M_ii', P_ii'> with M = W^T diag(s) W,   q_i = sum over channel i's block of (XtY diag(s)) * W^T,
plus gamma * (A^T A, A^T b) for the classification term, gamma chosen so that
gamma * ||b||^2 = gamma_rel * sum_j s_j ||Y_j||^2. With s = 1 and gamma = 0 this is exactly CP.

The refit is least squares per output channel (the paper's). Beyond the paper, with held-out sums it is
shrunk toward the original weights by a ridge chosen on held-out images (`choose_ridge`), which keeps
layers that see few distinct rows from overfitting; `refit_cg` instead minimises the same combined
objective as the selection, reconstruction plus classification term, whose classification rows couple
the output channels: conjugate gradient on the stored sampled rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from cplitool.toolchain.prune.lasso import select_exact
from cplitool.toolchain.prune.sampling import FewRows, GramSums, StoredRows, per_image

RIDGE_DECADES = 3  # choose_ridge tries up to 1e-3, 1e-2, 1e-1 and 1 (and the configured ridge)
SMALL_FIT = 1024  # a refit whose factorised side (rows, or kept patch columns) is at most this uses one thread


@dataclass
class StageSolution:
    keep: np.ndarray  # kept input channels of the consumer, sorted
    weight: torch.Tensor  # (n, c'*k) consumer weight over the kept channels
    err_before: float  # relative reconstruction error, kept channels with their original weights
    err_after: float  # ... after the refit (plain least squares: never larger, the refit is dropped otherwise)
    refit: bool  # False when the refit did not lower the error and the original weights were kept
    seconds: float  # selection and refit
    ridge: float | None = None  # relative ridge of the refit (toward the original weights); None: not refitted
    refit_seconds: float = 0.0  # the refit alone (its ridge search included)


def objective(
    grams: GramSums, W: torch.Tensor, c: int, s: torch.Tensor, gamma_rel: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(Q, q, gamma) of the stage LASSO, divided by the number of sampled rows."""
    k = W.shape[1] // c
    Q = channel_gram(W, s, grams.P, k)
    q = channel_target(W, s, grams.XtY, k)
    gamma = gamma_of(grams, s, gamma_rel)
    if gamma > 0 and grams.AtA is not None and grams.Atb is not None:
        Q = Q + gamma * grams.AtA
        q = q + gamma * grams.Atb
    rows = max(grams.rows, 1)
    return (Q / rows).cpu().numpy(), (q / rows).cpu().numpy(), gamma


STRIP_ENTRIES = 1 << 19  # entries of one strip of M o P in channel_gram: 4 MB of float64, cache-sized


def channel_gram(W: torch.Tensor, s: torch.Tensor, P: torch.Tensor, k: int) -> torch.Tensor:
    """B_ii' = <M_ii', P_ii'> over every pair of input channels, M = W^T diag(s) W: (c, c) float64.

    The n x (c*k)^2 weight Gram is the costly part of a stage's objective. It is formed a strip of channels
    at a time, upper strips only, and reduced to channel blocks at once, so the (c*k)^2 product M o P is
    never held whole. M is multiplied in the weights' precision, at least float32 (a float32 network's M
    is then a sum of n products of float32 weights: relative error about 1e-7, far below the sampling noise
    of P, at twice float64's rate); P, which sums tens of thousands of rows and is differenced for the
    held-out split, stays float64, and so do the products and block sums."""
    ck = W.shape[1]
    c = ck // k
    dtype = torch.promote_types(W.dtype, torch.float32)
    Ws = (W.to(P.device, dtype) * s.to(P.device, dtype).sqrt()[:, None]).contiguous()
    B = torch.empty(c, c, dtype=torch.float64, device=P.device)
    step = max(1, STRIP_ENTRIES // (ck * k))
    for a in range(0, c, step):
        b = min(a + step, c)
        M = (Ws[:, a * k : b * k].t() @ Ws[:, a * k :]).double().mul_(P[a * k : b * k, a * k :])
        block = M.view(b - a, k, c - a, k).sum(3).sum(1)  # the inner axis first: contiguous
        B[a:b, a:] = block
        B[b:, a:b] = block[:, b - a :].t()
    return B


def channel_target(W: torch.Tensor, s: torch.Tensor, XtY: torch.Tensor, k: int) -> torch.Tensor:
    """q_i = sum over channel i's block of (XtY diag(s)) o W^T: (c,) float64, the linear term over single channels."""
    Wd = W.to(XtY.device, torch.float64)
    sd = s.to(XtY.device, torch.float64)
    return ((XtY * sd[None, :]) * Wd.t()).sum(1).view(W.shape[1] // k, k).sum(1)


def gamma_of(grams: GramSums, s: torch.Tensor, gamma_rel: float) -> float:
    """gamma with gamma * ||b||^2 = gamma_rel * sum_j s_j ||Y_j||^2; 0 without classification sums."""
    if gamma_rel <= 0 or grams.AtA is None or grams.bb <= 0:
        return 0.0
    return gamma_rel * float((s.to(grams.yy.device, torch.float64) * grams.yy).sum()) / grams.bb


def columns(keep: np.ndarray, k: int) -> torch.Tensor:
    """Indices into the c*k patch axis of the kept channels' blocks."""
    return torch.as_tensor((keep[:, None] * k + np.arange(k)[None, :]).reshape(-1))


@dataclass
class KeptSums:
    """The reconstruction sums restricted to the kept columns, gathered once (a consumer's P can be 170 MB; the
    ridge search evaluates and fits on it several times)."""

    P: torch.Tensor  # (m, m)
    XtY: torch.Tensor  # (m, n)
    yy: torch.Tensor  # (n,)

    @classmethod
    def of(cls, grams: GramSums, cols: torch.Tensor) -> KeptSums:
        cols = cols.to(grams.P.device)
        return cls(grams.P[cols[:, None], cols], grams.XtY[cols], grams.yy)

    def minus(self, other: KeptSums) -> KeptSums:
        return KeptSums(self.P - other.P, self.XtY - other.XtY, self.yy - other.yy)

    def error(self, Wk: torch.Tensor) -> float:
        """sum_r ||Y_r - Wk x_r[cols]||^2 / sum_r ||Y_r||^2."""
        Wt = Wk.to(self.P.device, torch.float64).t()
        total = float(self.yy.sum())
        err = total - 2 * float((Wt * self.XtY).sum()) + float(((self.P @ Wt) * Wt).sum())
        return max(err, 0.0) / max(total, 1e-300)

    def fit(self, ridge: float, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Least squares of Y on the kept patches, all output channels at once: (n, m), shrunk toward `prior`
        (n, m), the original weights, or toward zero without one. The ridge is relative to the mean diagonal
        of P; 0 uses a rank-revealing solver."""
        P, XtY = self.P, self.XtY
        if ridge > 0:
            lam = ridge * float(P.diagonal().mean())
            A = P + lam * torch.eye(P.shape[0], dtype=P.dtype, device=P.device)
            rhs = XtY if prior is None else XtY + lam * prior.to(P.device, P.dtype).t()
            L, info = torch.linalg.cholesky_ex(A)  # SPD: half the work of a general solve
            if int(info) == 0:
                return torch.cholesky_solve(rhs, L).t()
            return torch.linalg.solve(A, rhs).t()
        return torch.linalg.lstsq(P.cpu(), XtY.cpu(), driver="gelsd").solution.t().to(P.device)

    def held_errors(self, held: Kept, ridges: list[float], prior: torch.Tensor) -> list[float]:
        """held.error of this fit at each ridge (toward `prior`): one factorisation per ridge."""
        return [held.error(self.fit(ridge, prior)) for ridge in ridges]


@dataclass
class KeptRows:
    """The sampled rows restricted to the kept columns, float64, when they are fewer than the columns (few
    images): the same fits and errors as KeptSums in the row space, O(rows^2 m) where the Gram form is O(m^3).
    (P + lam I)^-1 X^T = X^T (X X^T + lam I)^-1, so both give the same weights."""

    X: torch.Tensor  # (rows, m)
    Y: torch.Tensor  # (rows, n)
    held: torch.Tensor  # (rows,) bool: held-out rows

    @classmethod
    def of(cls, few: FewRows, cols: torch.Tensor) -> KeptRows:
        X = torch.cat(few.X)
        return cls(X[:, cols.to(X.device)].double(), torch.cat(few.Y).double(), torch.cat(few.held))

    def split(self) -> tuple[KeptRows, KeptRows]:
        """(the rows fitted on, the held-out rows) for the ridge search."""
        off = torch.zeros_like(self.held)
        return (
            KeptRows(self.X[~self.held], self.Y[~self.held], off[~self.held]),
            KeptRows(self.X[self.held], self.Y[self.held], off[self.held]),
        )

    def error(self, Wk: torch.Tensor) -> float:
        """sum_r ||Y_r - Wk x_r||^2 / sum_r ||Y_r||^2, as KeptSums.error."""
        residual = self.Y - self.X @ Wk.to(self.X.device, torch.float64).t()
        return float((residual * residual).sum()) / max(float((self.Y * self.Y).sum()), 1e-300)

    def fit(self, ridge: float, prior: torch.Tensor | None = None) -> torch.Tensor:
        """As KeptSums.fit (the same relative ridge: mean of P's diagonal = mean squared column norm):
        Wk = prior + (Y - X prior)^T (X X^T + lam I)^-1 X."""
        X, Y = self.X, self.Y
        if ridge > 0:
            lam = ridge * float((X * X).sum()) / max(X.shape[1], 1)
            base = torch.zeros(Y.shape[1], X.shape[1], dtype=X.dtype, device=X.device)
            if prior is not None:
                base = prior.to(X.device, X.dtype)
            K = X @ X.t() + lam * torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
            residual = Y - X @ base.t()
            L, info = torch.linalg.cholesky_ex(K)
            dual = torch.cholesky_solve(residual, L) if int(info) == 0 else torch.linalg.solve(K, residual)
            return base + dual.t() @ X
        return torch.linalg.lstsq(X.cpu(), Y.cpu(), driver="gelsd").solution.t().to(X.device)

    def held_errors(self, held: Kept, ridges: list[float], prior: torch.Tensor) -> list[float]:
        """held.error(self.fit(ridge, prior)) at every ridge from one eigendecomposition X X^T = U diag(e) U^T:
        the held-out residual is R_h - (X_h X^T) U diag(1 / (e + lam)) U^T R, with R = Y - X prior^T, so a
        ridge costs held rows x rows x n instead of a fit's rows x m x n products. Ridge 0 (the rank-revealing
        fit toward zero) is fitted as before."""
        assert isinstance(held, KeptRows)  # split() makes both halves rows
        X, base = self.X, prior.to(self.X.device, self.X.dtype)
        e, U = torch.linalg.eigh(X @ X.t())
        A = U.t() @ (self.Y - X @ base.t())  # (rows, n)
        CU = (held.X @ X.t()) @ U  # (held rows, rows)
        Rh = held.Y - held.X @ base.t()
        total = max(float((held.Y * held.Y).sum()), 1e-300)
        scale = float((X * X).sum()) / max(X.shape[1], 1)  # lam = ridge * mean squared column norm, as in fit
        errors = []
        for ridge in ridges:
            if ridge <= 0:
                errors.append(held.error(self.fit(ridge, prior)))
                continue
            residual = Rh - CU @ (A / (e + ridge * scale)[:, None])
            errors.append(float((residual * residual).sum()) / total)
        return errors


Kept = KeptSums | KeptRows


def kept_samples(grams: GramSums, cols: torch.Tensor) -> Kept:
    """The refit's view of a consumer's samples on the kept columns: the rows while there are few, else the sums."""
    return KeptRows.of(grams.few, cols) if grams.few is not None else KeptSums.of(grams, cols)


def ridge_grid(ridge: float) -> list[float]:
    """The relative ridges the held-out search tries: `ridge` itself, then each power of ten above it up to 1."""
    return [ridge] + [10.0**e for e in range(-RIDGE_DECADES, 1) if 10.0**e > ridge]


def choose_ridge(
    grams: GramSums, cols: torch.Tensor, original: torch.Tensor, ridge: float, full: Kept | None = None
) -> float | None:
    """The relative ridge (toward the original weights) whose fit on the other images reconstructs the
    held-out images best, or None when the original weights do better than every fit. Without held-out
    rows (or with nothing else), `ridge` unchanged. `full`: kept_samples(grams, cols), when the caller has it."""
    if grams.held is None or grams.held.rows == 0 or grams.held.rows >= grams.rows:
        return ridge
    full = full or kept_samples(grams, cols)
    train: Kept
    held: Kept
    if isinstance(full, KeptRows):
        train, held = full.split()
    else:
        held = KeptSums.of(grams.held, cols)
        train = full.minus(held)
    errors: dict[float | None, float] = {None: held.error(original)}
    grid = ridge_grid(ridge)
    errors.update(zip(grid, train.held_errors(held, grid, original), strict=True))
    return min(errors, key=lambda lam: errors[lam])


def select(grams: GramSums, W: torch.Tensor, c: int, s: torch.Tensor, gamma_rel: float, keep: int) -> np.ndarray:
    """Channels the augmented LASSO keeps (exactly `keep` of c)."""
    Q, q, _ = objective(grams, W, c, s, gamma_rel)
    return select_exact(Q, q, keep)[1]


def solve_stage(
    grams: GramSums,
    W: torch.Tensor,
    c: int,
    s: torch.Tensor,
    gamma_rel: float,
    keep: int,
    ridge: float,
    classification_refit: bool = False,
) -> StageSolution:
    """Select `keep` of the consumer's c input channels, then refit its weights on them (with
    `classification_refit` and stored rows: on the combined objective, by refit_cg)."""
    start = time.perf_counter()
    kept = select(grams, W, c, s, gamma_rel, keep)
    gamma = gamma_of(grams, s, gamma_rel)
    if classification_refit and gamma > 0 and grams.stored is not None:
        return refit_cg(grams, W, c, kept, s, gamma, ridge, start)
    return refit(grams, W, c, kept, ridge, start)


@contextmanager
def threads_for(side: int) -> Iterator[None]:
    """torch on one thread for a small refit (factorised side <= SMALL_FIT): its small products and
    factorisations gain little from a second thread, and on a busy machine every call waits for it
    (resnet18 at 64 images beside two 1-thread jobs, three paired runs: refit 1.1-2.6 s on 2 threads,
    1.0-1.1 s on 1; quiet, 0.3 s against 0.5 s)."""
    before = torch.get_num_threads()
    if side > SMALL_FIT or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def refit(grams: GramSums, W: torch.Tensor, c: int, kept: np.ndarray, ridge: float, start: float) -> StageSolution:
    """Least-squares weights on the kept channels, shrunk toward the original ones by the ridge that
    `choose_ridge` picks on held-out images (when the sums hold some: prune.ridge_search); kept only when
    they lower the error."""
    entered = time.perf_counter()
    k = W.shape[1] // c
    cols = columns(kept, k)
    original = W[:, cols.to(W.device)].double()
    full = kept_samples(grams, cols)
    with threads_for(full.X.shape[0] if isinstance(full, KeptRows) else full.P.shape[0]):
        before = full.error(original)
        searched = grams.held is not None  # without held-out sums: the paper's plain fit, fixed ridge toward zero
        lam = choose_ridge(grams, cols, original, ridge, full) if searched else ridge
        fitted = original if lam is None else full.fit(lam, original if searched else None)
        after = full.error(fitted)
    better = lam is not None and after <= before
    weight = (fitted if better else original).to(W.dtype).to(W.device)
    now = time.perf_counter()
    return StageSolution(
        kept, weight, before, after if better else before, better, now - start, lam if better else None, now - entered
    )


@dataclass
class ConsumerTerm:
    """One dense reader of a coupled group, for the group's shared selection.

    `channels[i]` (an input channel of the consumer) carries root channel `roots[i]` of the group; its other
    input channels are fixed (their current weights stay in the reconstruction; removed ones have zero
    weight). W is the consumer's (n, c*k) weight, s its output weights (feature importance)."""

    grams: GramSums
    W: torch.Tensor
    c: int
    channels: np.ndarray
    roots: np.ndarray
    s: torch.Tensor


def consumer_objective(
    term: ConsumerTerm, classes: np.ndarray, n_classes: int, gamma_rel: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, q) of one consumer over the group's tie classes, divided by the consumer's output energy
    sum_j s_j ||Y_j||^2 so that every consumer weighs the same whatever its scale.

    With D the design over the consumer's input channels: Q = E^T D^T D E, q = E^T D^T (y - D f), where E
    maps the group's channels to their classes and f is 1 on the consumer's other (fixed) channels."""
    g = term.grams
    k = term.W.shape[1] // term.c
    dev = g.P.device
    sd = term.s.to(dev, torch.float64)
    B = channel_gram(term.W, term.s, g.P, k)  # (c, c): Q over single channels
    v = channel_target(term.W, term.s, g.XtY, k)  # (c,): q over single channels
    ch = torch.as_tensor(term.channels, device=dev)
    ch_class = torch.as_tensor(classes[term.roots], device=dev)
    Q, q = _over_classes(B, v, ch, ch_class, term.c, n_classes)
    energy = float((sd * g.yy).sum())
    if gamma_rel > 0 and g.AtA is not None and g.Atb is not None and g.bb > 0:
        gamma = gamma_rel * energy / g.bb
        Q_cls, q_cls = _over_classes(g.AtA, g.Atb, ch, ch_class, term.c, n_classes)
        Q, q = Q + gamma * Q_cls, q + gamma * q_cls
    scale = max(energy, 1e-300)
    return Q / scale, q / scale


def _over_classes(
    M: torch.Tensor, v: torch.Tensor, ch: torch.Tensor, ch_class: torch.Tensor, c: int, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A consumer's single-channel terms (M (c, c), v (c,)) on the group's n tie classes: E^T M[ch][:, ch] E
    and E^T (v[ch] - M[ch] f), f the indicator of the channels not in `ch` (fixed). When the consumer reads
    every channel of the group, each its own class (the common case), that is M and v themselves: no
    (c, c) copies."""
    every = torch.arange(c, device=ch.device)
    if n == c and torch.equal(ch, every) and torch.equal(ch_class, every):
        return M, v
    fixed = torch.ones(c, dtype=torch.float64, device=ch.device)
    fixed[ch] = 0.0
    rows = M[ch]
    q_ch = v[ch] - rows @ fixed
    return _aggregate(rows[:, ch], ch_class, n), torch.zeros(n, dtype=M.dtype, device=M.device).index_add_(
        0, ch_class, q_ch
    )


def _aggregate(M: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:
    """Sum the rows and columns of M that share an id: (n, n)."""
    rows = torch.zeros(n, M.shape[1], dtype=M.dtype, device=M.device).index_add_(0, ids, M)
    return torch.zeros(n, n, dtype=M.dtype, device=M.device).index_add_(1, ids, rows)


def select_group(
    terms: list[ConsumerTerm], classes: np.ndarray, n_classes: int, gamma_rel: float, keep: int
) -> np.ndarray:
    """Tie classes kept by one LASSO over the sum of every consumer's normalised objective (exactly `keep`)."""
    parts = [consumer_objective(t, classes, n_classes, gamma_rel) for t in terms]
    Q = sum(p[0] for p in parts)
    q = sum(p[1] for p in parts)
    return select_exact(Q.cpu().numpy(), q.cpu().numpy(), keep)[1]  # type: ignore[union-attr]


@dataclass
class _Rows:
    """Stored rows restricted to the kept columns, in float64, with the classification rows' grouping."""

    X: torch.Tensor  # (rows, m)
    G: torch.Tensor  # (rows, n)
    b: torch.Tensor  # (groups,) b per classification row
    image: torch.Tensor | None  # (rows,) group of each row when rows are summed per image

    @classmethod
    def of(cls, stored: StoredRows, cols: torch.Tensor, per_image_rows: bool) -> _Rows:
        X = torch.cat(stored.X).cpu()[:, cols].double()
        G, b = torch.cat(stored.G).cpu().double(), torch.cat(stored.b).cpu().double()
        image = torch.cat(stored.image).cpu() if per_image_rows else None
        return cls(X, G, per_image(b, image) if image is not None else b, image)

    def predicted(self, Wk: torch.Tensor) -> torch.Tensor:
        """<G_r, Wk x_r> per classification row (summed per image when grouped)."""
        u = ((self.X @ Wk.t()) * self.G).sum(1)
        return per_image(u, self.image) if self.image is not None else u

    def spread(self, v: torch.Tensor) -> torch.Tensor:
        """sum over classification rows g of v_g * sum_{r in g} G_r x_r^T: (n, m)."""
        if self.image is not None:
            v = v[torch.unique(self.image, return_inverse=True)[1]]
        return self.G.t() @ (v[:, None] * self.X)


def combined_objective(
    grams: GramSums, cols: torch.Tensor, Wk: torch.Tensor, s: torch.Tensor, gamma: float, rows: _Rows
) -> float:
    """(1/N) [sum_j s_j ||Y_j - Yhat_j||^2 + gamma * sum_g (<G, Yhat>_g - b_g)^2] for weights Wk on `cols`:
    the selection's objective with beta folded into the weights."""
    cols = cols.to(grams.P.device)
    Wk = Wk.to(grams.P.device, torch.float64)
    sd = s.to(grams.P.device, torch.float64)
    P, XtY = grams.P[cols][:, cols], grams.XtY[cols]
    recon = sd * (grams.yy - 2 * (Wk.t() * XtY).sum(0) + ((P @ Wk.t()) * Wk.t()).sum(0))
    cls_term = float(((rows.predicted(Wk.cpu()) - rows.b) ** 2).sum())
    return (float(recon.sum()) + gamma * cls_term) / max(grams.rows, 1)


def refit_cg(
    grams: GramSums,
    W: torch.Tensor,
    c: int,
    kept: np.ndarray,
    s: torch.Tensor,
    gamma: float,
    ridge: float,
    start: float,
    iters: int = 100,
    tol: float = 1e-8,
) -> StageSolution:
    """Weights on the kept channels minimising combined_objective (plus the ridge, weighted by s so that
    gamma = 0 gives the plain least-squares fit): conjugate gradient on the normal equations
    L(Wk) = diag(s) Wk (P + lam I) + gamma * spread(predicted(Wk)), warm-started at the least-squares fit.
    Kept only when its combined objective is below the original weights'."""
    assert grams.stored is not None
    entered = time.perf_counter()
    k = W.shape[1] // c
    cols = columns(kept, k)
    rows = _Rows.of(grams.stored, cols, grams.per_image)
    sums = KeptSums.of(grams, cols)  # gathered once: the fit, the operator and both errors read it
    P, XtY = sums.P.cpu(), sums.XtY.cpu()
    sd = s.double().cpu()[:, None]
    lam = ridge * float(P.diagonal().mean())
    sd_pd = sd + 1e-9  # keeps L positive definite where s_j = 0

    def apply(V: torch.Tensor) -> torch.Tensor:
        return sd_pd * (V @ P + lam * V) + gamma * rows.spread(rows.predicted(V))

    rhs = sd * XtY.t() + gamma * rows.spread(rows.b)
    Wk = sums.fit(ridge).cpu().double()
    R = rhs - apply(Wk)
    D = R.clone()
    rr = float((R * R).sum())
    stop = tol**2 * float((rhs * rhs).sum())
    for _ in range(iters):
        if rr <= stop:
            break
        AD = apply(D)
        alpha = rr / float((D * AD).sum())
        Wk += alpha * D
        R -= alpha * AD
        rr, old = float((R * R).sum()), rr
        D = R + (rr / old) * D
    original = W[:, cols.to(W.device)].double().cpu()
    better = combined_objective(grams, cols, Wk, s, gamma, rows) < combined_objective(
        grams, cols, original, s, gamma, rows
    )
    chosen = Wk if better else original
    before = sums.error(original)
    after = sums.error(chosen)
    return StageSolution(
        kept,
        chosen.to(W.dtype).to(W.device),
        before,
        after,
        better,
        time.perf_counter() - start,
        ridge if better else None,
        time.perf_counter() - entered,
    )
