"""Output comparison in Polygraphy's manner: element-wise absolute and relative tolerance, error statistics,
the smallest tolerances that would have passed, and top-1 agreement of the two classifiers.

An element fails where |a - b| > atol AND |a - b| / |ref| > rtol, so tiny logits are judged by atol and
large ones by rtol. A NaN or infinite element always fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class ErrorStats:
    max: float
    mean: float
    p99: float

    @classmethod
    def of(cls, err: np.ndarray) -> ErrorStats:
        return cls(float(err.max()), float(err.mean()), float(np.percentile(err, 99)))


@dataclass
class ParityReport:
    """Comparison of `out` (ONNX Runtime) against `ref` (PyTorch) on the same images."""

    atol: float
    rtol: float
    images: int
    elements: int
    mismatches: int  # elements failing both tolerances
    abs_err: ErrorStats
    rel_err: ErrorStats
    min_atol: float  # smallest atol that passes at this rtol
    min_rtol: float  # smallest rtol that passes at this atol
    top1_agreement: float  # percent of images whose arg-max class is the same

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """The verdict in one short line (under 60 characters); details() and to_dict() hold the rest."""
        verdict = "PASS" if self.passed else f"FAIL {self.mismatches}/{self.elements} elements"
        return f"{verdict} (n={self.images}): max |a-b| {self.abs_err.max:.2g}, atol {self.atol:g}"

    def details(self) -> str:
        """Every statistic, for --verbose and the file metadata."""
        return (
            f"atol={self.atol:g} rtol={self.rtol:g}: |a-b| max {self.abs_err.max:.3g} mean {self.abs_err.mean:.3g} "
            f"p99 {self.abs_err.p99:.3g}; rel max {self.rel_err.max:.3g} mean {self.rel_err.mean:.3g} "
            f"p99 {self.rel_err.p99:.3g}; smallest passing atol {self.min_atol:.3g} (at rtol {self.rtol:g}), "
            f"rtol {self.min_rtol:.3g} (at atol {self.atol:g}); top-1 agreement {self.top1_agreement:.2f}%"
        )


def compare(ref: np.ndarray, out: np.ndarray, atol: float, rtol: float) -> ParityReport:
    """Compare two (images, classes) logit arrays; shapes must match."""
    if ref.shape != out.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, compared {out.shape}")
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    abs_err = np.abs(out64 - ref64)
    # A zero reference gets the smallest float32 as its magnitude: a huge but finite relative error.
    rel_err = abs_err / np.maximum(np.abs(ref64), np.finfo(np.float32).tiny)
    fails = ~((abs_err <= atol) | (rel_err <= rtol))  # written so that a NaN fails: it compares false
    agree = ref.reshape(len(ref), -1).argmax(1) == out.reshape(len(out), -1).argmax(1)
    return ParityReport(
        atol=atol,
        rtol=rtol,
        images=len(ref),
        elements=int(ref.size),
        mismatches=int(fails.sum()),
        abs_err=ErrorStats.of(abs_err),
        rel_err=ErrorStats.of(rel_err),
        min_atol=float(abs_err[rel_err > rtol].max(initial=0.0)),
        min_rtol=float(rel_err[abs_err > atol].max(initial=0.0)),
        top1_agreement=100.0 * float(agree.mean()) if len(agree) else 0.0,
    )
