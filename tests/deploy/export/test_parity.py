"""Polygraphy-style comparison: atol AND rtol per element, error statistics, smallest passing tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from cplitool.deploy.export.parity import compare


def test_identical_outputs_pass_with_zero_error() -> None:
    ref = np.random.default_rng(0).normal(size=(8, 10)).astype(np.float32)
    r = compare(ref, ref.copy(), atol=0.0, rtol=0.0)
    assert r.passed and r.mismatches == 0
    assert r.abs_err.max == 0.0 and r.min_atol == 0.0 and r.min_rtol == 0.0
    assert r.top1_agreement == 100.0 and r.images == 8 and r.elements == 80


def test_element_fails_only_when_both_tolerances_are_exceeded() -> None:
    ref = np.array([[100.0, 0.001]], dtype=np.float32)
    out = np.array([[100.5, 0.002]], dtype=np.float32)  # abs 0.5 / rel 0.005; abs 0.001 / rel 1.0
    assert compare(ref, out, atol=0.01, rtol=0.01).passed  # first: rel small; second: abs small
    r = compare(ref, out, atol=1e-4, rtol=1e-3)
    assert not r.passed and r.mismatches == 2
    assert r.min_atol == pytest.approx(0.5)  # the largest abs error among elements over rtol
    assert r.min_rtol == pytest.approx(1.0, rel=1e-3)  # the largest rel error among elements over atol
    assert compare(ref, out, atol=r.min_atol, rtol=1e-3).passed
    assert compare(ref, out, atol=1e-4, rtol=r.min_rtol).passed


def test_statistics_and_top1_agreement() -> None:
    ref = np.array([[1.0, 2.0], [3.0, 1.0], [0.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    out = ref + np.array([[0.0, 0.0], [0.0, 2.5], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    r = compare(ref, out, atol=1e-3, rtol=1e-3)
    assert r.abs_err.max == pytest.approx(2.5) and r.abs_err.mean == pytest.approx(2.5 / 8)
    assert r.rel_err.max == pytest.approx(2.5)
    assert r.top1_agreement == pytest.approx(75.0)  # row 2 flips from class 0 to class 1
    assert r.summary() == "FAIL 1/8 elements (n=4): max |a-b| 2.5, atol 0.001"
    assert "top-1 agreement 75.00%" in r.details() and "rel max 2.5" in r.details()


def test_zero_reference_is_judged_by_atol() -> None:
    ref = np.zeros((1, 3), dtype=np.float32)
    assert compare(ref, ref + 1e-6, atol=1e-5, rtol=0.0).passed
    assert not compare(ref, ref + 1e-4, atol=1e-5, rtol=1e9).passed  # relative error of a zero reference is infinite


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        compare(np.zeros((2, 3)), np.zeros((2, 4)), 1e-4, 1e-4)


def test_nan_output_never_passes() -> None:
    ref = np.zeros((2, 3), np.float32)
    out = ref.copy()
    out[1, 2] = np.nan
    r = compare(ref, out, atol=1e-4, rtol=1e-4)
    assert not r.passed and r.mismatches == 1
    assert not compare(np.full((1, 2), np.nan, np.float32), np.full((1, 2), np.nan, np.float32), 1.0, 1.0).passed
