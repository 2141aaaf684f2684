"""One CPLI stage in Gram form: the augmented LASSO's Q and q, channel selection, and the weight refit.

Notation (docs/cpli-method.md, section 2, a reconstruction of the paper's method): the consumer conv has
c input channels, kernel size k, n outputs; W is (n, c*k). P = X^T X is (c*k, c*k), XtY = X^T Y.
  Q_ii' = <M_ii', P_ii'> with M = W^T diag(s) W,   q_i = sum over channel i's block of (XtY diag(s)) * W^T,
plus gamma * (A^T A, A^T b) for the classification term, gamma chosen so that
gamma * ||b||^2 = gamma_rel * sum_j s_j ||Y_j||^2. With s = 1 and gamma = 0 this is exactly CP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from toolchain.prune.lasso import select_exact
from toolchain.prune.sampling import GramSums


@dataclass
class StageSolution:
    keep: np.ndarray  # kept input channels of the consumer, sorted
    weight: torch.Tensor  # (n, c'*k) consumer weight over the kept channels
    err_before: float  # relative reconstruction error, kept channels with their original weights
    err_after: float  # ... after the least-squares refit (never larger: the refit is dropped otherwise)
    refit: bool  # False when the refit did not lower the error and the original weights were kept
    seconds: float


def objective(
    grams: GramSums, W: torch.Tensor, c: int, s: torch.Tensor, gamma_rel: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(Q, q, gamma) of the stage LASSO, divided by the number of sampled rows."""
    k = W.shape[1] // c
    Wd = W.to(grams.P.device, torch.float64)
    sd = s.to(grams.P.device, torch.float64)
    Ws = Wd * sd.sqrt()[:, None]
    Q = ((Ws.t() @ Ws) * grams.P).view(c, k, c, k).sum((1, 3))
    q = ((grams.XtY * sd[None, :]) * Wd.t()).sum(1).view(c, k).sum(1)
    gamma = 0.0
    if gamma_rel > 0 and grams.AtA is not None and grams.Atb is not None and grams.bb > 0:
        gamma = gamma_rel * float((sd * grams.yy).sum()) / grams.bb
        Q = Q + gamma * grams.AtA
        q = q + gamma * grams.Atb
    rows = max(grams.rows, 1)
    return (Q / rows).cpu().numpy(), (q / rows).cpu().numpy(), gamma


def columns(keep: np.ndarray, k: int) -> torch.Tensor:
    """Indices into the c*k patch axis of the kept channels' blocks."""
    return torch.as_tensor((keep[:, None] * k + np.arange(k)[None, :]).reshape(-1))


def recon_error(grams: GramSums, cols: torch.Tensor, Wk: torch.Tensor) -> float:
    """sum_r ||Y_r - Wk x_r[cols]||^2 / sum_r ||Y_r||^2, from the Gram sums alone."""
    cols = cols.to(grams.P.device)
    Wk = Wk.to(grams.P.device, torch.float64)
    P = grams.P[cols][:, cols]
    XtY = grams.XtY[cols]
    total = float(grams.yy.sum())
    err = total - 2 * float((Wk.t() * XtY).sum()) + float(((P @ Wk.t()) * Wk.t()).sum())
    return max(err, 0.0) / max(total, 1e-300)


def fit_weights(grams: GramSums, cols: torch.Tensor, ridge: float) -> torch.Tensor:
    """Least squares of Y on the kept patches, all output channels at once: (n, len(cols)).
    The ridge is relative to the mean diagonal of P; 0 uses a rank-revealing solver."""
    cols = cols.to(grams.P.device)
    P = grams.P[cols][:, cols]
    XtY = grams.XtY[cols]
    if ridge > 0:
        lam = ridge * float(P.diagonal().mean())
        eye = torch.eye(P.shape[0], dtype=P.dtype, device=P.device)
        return torch.linalg.solve(P + lam * eye, XtY).t()
    return torch.linalg.lstsq(P.cpu(), XtY.cpu(), driver="gelsd").solution.t().to(P.device)


def select(grams: GramSums, W: torch.Tensor, c: int, s: torch.Tensor, gamma_rel: float, keep: int) -> np.ndarray:
    """Channels the augmented LASSO keeps (exactly `keep` of c)."""
    Q, q, _ = objective(grams, W, c, s, gamma_rel)
    return select_exact(Q, q, keep)[1]


def solve_stage(
    grams: GramSums, W: torch.Tensor, c: int, s: torch.Tensor, gamma_rel: float, keep: int, ridge: float
) -> StageSolution:
    """Select `keep` of the consumer's c input channels, then refit its weights on them."""
    start = time.perf_counter()
    kept = select(grams, W, c, s, gamma_rel, keep)
    return refit(grams, W, c, kept, ridge, start)


def refit(grams: GramSums, W: torch.Tensor, c: int, kept: np.ndarray, ridge: float, start: float) -> StageSolution:
    """Least-squares weights on the kept channels; kept only when they lower the reconstruction error."""
    k = W.shape[1] // c
    cols = columns(kept, k)
    original = W[:, cols.to(W.device)].double()
    before = recon_error(grams, cols, original)
    fitted = fit_weights(grams, cols, ridge)
    after = recon_error(grams, cols, fitted)
    better = after <= before
    weight = (fitted if better else original).to(W.dtype).to(W.device)
    return StageSolution(kept, weight, before, min(after, before), better, time.perf_counter() - start)


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
    Wd = term.W.to(dev, torch.float64)
    sd = term.s.to(dev, torch.float64)
    Ws = Wd * sd.sqrt()[:, None]
    MP = (Ws.t() @ Ws) * g.P  # (ck, ck): Q over single columns
    v = ((g.XtY * sd[None, :]) * Wd.t()).sum(1)  # (ck,): q over single columns
    free = torch.zeros(term.c, dtype=torch.bool, device=dev)
    free[torch.as_tensor(term.channels, device=dev)] = True
    fixed_cols = (~free).repeat_interleave(k).to(torch.float64)
    cols = torch.as_tensor(term.channels[:, None] * k + np.arange(k)[None, :], device=dev).reshape(-1)
    col_class = torch.as_tensor(classes[term.roots], device=dev).repeat_interleave(k)
    q_cols = v[cols] - MP[cols] @ fixed_cols
    Q = _aggregate(MP[cols][:, cols], col_class, n_classes)
    q = torch.zeros(n_classes, dtype=torch.float64, device=dev).index_add_(0, col_class, q_cols)
    energy = float((sd * g.yy).sum())
    if gamma_rel > 0 and g.AtA is not None and g.Atb is not None and g.bb > 0:
        gamma = gamma_rel * energy / g.bb
        ch = torch.as_tensor(term.channels, device=dev)
        ch_class = torch.as_tensor(classes[term.roots], device=dev)
        q_cls = g.Atb[ch] - g.AtA[ch] @ (~free).to(torch.float64)
        Q = Q + gamma * _aggregate(g.AtA[ch][:, ch], ch_class, n_classes)
        q = q + gamma * torch.zeros(n_classes, dtype=torch.float64, device=dev).index_add_(0, ch_class, q_cls)
    scale = max(energy, 1e-300)
    return Q / scale, q / scale


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
