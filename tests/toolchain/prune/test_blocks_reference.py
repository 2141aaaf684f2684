"""prune.scope = "blocks" still gives exactly what the code gave before coupled groups existed.

Floats are compared at a tolerance derived from how far torch's kernel levels and thread counts move them
(fixtures/blocks_reference_spread.json, measured by blocks_reference.py), times SPREAD_MARGIN; selections
are compared exactly after the test shows they survive perturbations of that size. `make test` runs these
tests once more under ATEN_CPU_CAPABILITY=default (the `reference` marker)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cplitool.toolchain.prune.lasso import select_exact
from tests.toolchain.prune.blocks_reference import (
    CASES,
    FIXTURE,
    SPREAD,
    Selections,
    deviation,
    recorded_selections,
    run_case,
)

# The measured spread covers one CPU's kernel levels and two thread counts; another CPU or BLAS rounds in
# another order, by about as much (the fixture, recorded on another CPU, lies within 1x of it).
SPREAD_MARGIN = 5.0
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # the floor: one float32 rounding, where nothing moved
DRAWS = 3  # seeded perturbations per LASSO selection

pytestmark = pytest.mark.reference


def tolerance(measured: float) -> float:
    return SPREAD_MARGIN * max(measured, FLOAT32_EPS)


def perturbed(Q: np.ndarray, q: np.ndarray, eps: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Q and q with every entry moved by up to eps relative, as rounding moves them (Q kept symmetric)."""
    rng = np.random.default_rng(seed)
    E = rng.uniform(-1, 1, Q.shape)
    return Q * (1 + eps * (E + E.T) / 2), q * (1 + eps * rng.uniform(-1, 1, q.shape))


def assert_wide_margins(spy: Selections, lasso_eps: float, l1_eps: float) -> None:
    """Every selection stays the same when its inputs move by more than kernels and threads move them: the
    LASSO's Q and q in DRAWS seeded draws; the L1 criterion's gap between the last kept and the first dropped
    filter norm above the weights' spread and the float32 summation bound (n * eps32)."""
    for i, (Q, q, keep, kept) in enumerate(spy.lasso):
        for seed in range(DRAWS):
            again = select_exact(*perturbed(Q, q, lasso_eps, seed), keep)[1]
            assert again.tolist() == kept.tolist(), f"LASSO selection {i} changes when Q, q move by {lasso_eps:.1e}"
    for i, (norms, kept, n) in enumerate(spy.l1):
        dropped = np.setdiff1d(np.arange(len(norms)), kept)
        if len(dropped):
            gap = (norms[kept].min() - norms[dropped].max()) / norms[kept].min()
            assert gap > max(l1_eps, n * FLOAT32_EPS), f"L1 selection {i}: gap {gap:.1e} between kept and dropped"


@pytest.mark.parametrize("name, shape, method", CASES)
def test_blocks_scope_reproduces_the_reference(name: str, shape: tuple[int, ...], method: str) -> None:
    """Catches any change to the blocks path's stages, widths, selected channels or plain least-squares refit
    (the ridge search, which came later, is off here and tested in test_solver)."""
    case = f"{name}/{method}"
    want = json.loads(FIXTURE.read_text())[case]
    measured = json.loads(SPREAD.read_text())["cases"][case]
    with recorded_selections() as spy:
        got = run_case(name, shape, method, scope="blocks", ridge_search=False)
    assert_wide_margins(spy, tolerance(measured["lasso_inputs"]), tolerance(measured["weight_sums"]))
    assert got["keep"] == want["keep"] and got["kept"] == want["kept"]
    for key in ("weight_sums", "weight_sq"):
        assert got[key].keys() == want[key].keys()
        assert deviation(got, want, key) <= tolerance(measured[key]), key
