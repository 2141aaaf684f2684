"""The INT8 gate's paired drop: its interval, its verdicts, and a message that states the rule."""

from __future__ import annotations

import numpy as np
import pytest

from cplitool.deploy.export.int8_gate import paired_drop


def pair(n: int, lost: int, gained: int) -> tuple[np.ndarray, np.ndarray]:
    """FP32 right on every image but `gained` ones; INT8 loses `lost` of FP32's and gains `gained`."""
    fp32 = np.ones(n, bool)
    fp32[:gained] = False
    int8 = fp32.copy()
    int8[:gained] = True
    int8[gained : gained + lost] = False
    return fp32, int8


def test_five_of_360_digits_lost_is_within_sampling_error_of_one_point() -> None:
    # The quickstart's INT8: 98.33% vs 99.72%, 5 of 360 images: 1.39 points, not shown to exceed 1 point.
    drop = paired_drop(*pair(360, 5, 0), limit=1.0)
    assert drop.points == pytest.approx(100 * 5 / 360)
    assert drop.low < 1.0 < drop.high and drop.verdict == "inconclusive" and drop.passed
    assert "inconclusive" in drop.summary() and "more eval images" in drop.summary()


def test_a_drop_clearly_beyond_the_limit_fails_and_says_the_rule() -> None:
    drop = paired_drop(*pair(10_000, 300, 20), limit=1.0)  # 2.8 points on the full CIFAR-10 test set
    assert drop.verdict == "fail" and not drop.passed and drop.low > 1.0
    assert "must not exceed 1 points with 95% confidence" in drop.summary()


def test_no_change_passes_with_a_nonzero_interval() -> None:
    drop = paired_drop(*pair(360, 0, 0), limit=1.0)
    assert drop.points == 0.0 and drop.verdict == "pass"
    assert drop.low < 0.0 < drop.high < 1.0  # half an image per cell: width even when no image changed


def test_gained_images_offset_lost_ones() -> None:
    drop = paired_drop(*pair(1000, 30, 30), limit=0.5)
    assert drop.points == 0.0 and drop.verdict == "pass" and drop.high > 0.5  # 60 changed images: wide


def test_interval_matches_agresti_min() -> None:
    # n=100, b=10, c=2: adjusted b'=10.5, c'=2.5, n'=102 -> diff 0.07843, sd sqrt(13 - 64/102)/102 = 0.034486
    drop = paired_drop(*pair(100, 10, 2), limit=1.0)
    assert drop.low == pytest.approx(100 * (0.078431 - 1.959964 * 0.034486), abs=1e-3)
    assert drop.high == pytest.approx(100 * (0.078431 + 1.959964 * 0.034486), abs=1e-3)


def test_unpaired_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="paired"):
        paired_drop(np.ones(3, bool), np.ones(4, bool), 1.0)
