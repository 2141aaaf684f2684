"""The INT8 accuracy gate: the top-1 drop from FP32 to INT8 on the same images, with its sampling error.

Both files are scored on the same images, so the drop is a paired difference: only the images one file
gets right and the other wrong (b: FP32 right, INT8 wrong; c: the reverse) carry information. Its 95%
interval is Agresti and Min's adjusted Wald interval for matched proportions (half an image added to each
cell of the 2x2 table; Biometrics 61, 2005), which keeps a non-zero width when no image changes.

The rule: INT8 fails when the interval's lower bound exceeds export.int8_max_drop, i.e. the images show
with 95% confidence that more than the allowed top-1 was lost. A point estimate above the limit whose
interval still reaches below it is "inconclusive": it passes, and says how many more images would decide.
On 360 images one image is 0.28 points, so a 1-point limit cannot be told from sampling noise there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Drop:
    """FP32 top-1 minus INT8 top-1, in points, on `images` paired images, with its interval."""

    images: int
    fp32_only: int  # images FP32 classifies correctly and INT8 does not
    int8_only: int
    points: float
    low: float
    high: float
    limit: float

    @property
    def verdict(self) -> str:
        """'fail' when the drop is above the limit with 95% confidence, 'inconclusive' when only the point
        estimate is, else 'pass'."""
        if self.low > self.limit:
            return "fail"
        return "inconclusive" if self.points > self.limit else "pass"

    @property
    def passed(self) -> bool:
        return self.verdict != "fail"

    def summary(self) -> str:
        interval = f"drop {self.points:.2f} points, 95% CI {self.low:.2f} to {self.high:.2f}"
        changed = f"{self.fp32_only} images lost, {self.int8_only} gained of {self.images}"
        if self.verdict == "fail":
            rule = f"FAILED the rule: the drop must not exceed {self.limit:g} points with 95% confidence (CI low {self.low:.2f} > {self.limit:g})"
        elif self.verdict == "inconclusive":
            rule = (
                f"passes, but inconclusive: above the {self.limit:g}-point limit, within sampling error "
                f"(CI low {self.low:.2f} <= {self.limit:g}); more eval images would decide"
            )
        else:
            rule = f"within the {self.limit:g}-point limit"
        return f"{interval} ({changed}); {rule}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict, "confidence": CONFIDENCE}


def paired_drop(fp32_correct: np.ndarray, int8_correct: np.ndarray, limit: float) -> Drop:
    """The drop and its Agresti-Min interval from two per-image correctness vectors of the same images."""
    if fp32_correct.shape != int8_correct.shape or not len(fp32_correct):
        raise ValueError(f"paired correctness vectors differ or are empty: {fp32_correct.shape}, {int8_correct.shape}")
    a, b = fp32_correct.astype(bool), int8_correct.astype(bool)
    n = len(a)
    lost, gained = int((a & ~b).sum()), int((b & ~a).sum())
    nn, bb, cc = n + 2.0, lost + 0.5, gained + 0.5
    diff = (bb - cc) / nn
    sd = math.sqrt(max((bb + cc) - (bb - cc) ** 2 / nn, 0.0)) / nn
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    points = 100.0 * (lost - gained) / n
    return Drop(n, lost, gained, points, 100.0 * (diff - z * sd), 100.0 * (diff + z * sd), limit)
