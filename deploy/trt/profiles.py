"""Optimization profiles from the recipe's [trt] section (pure Python, so it is tested without TensorRT).

Tactics are tuned for a profile's opt shape and a wide min..max range costs speed, so either one narrow
min/opt/max range or one profile per batch of interest (trt.profile_batches) is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.sections import TrtSection


@dataclass(frozen=True)
class Profile:
    """Batch range of one optimization profile."""

    min: int
    opt: int
    max: int

    def shapes(self, sample_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes for IOptimizationProfile.set_shape."""
        return (self.min, *sample_shape), (self.opt, *sample_shape), (self.max, *sample_shape)

    def covers(self, batch: int) -> bool:
        return self.min <= batch <= self.max

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profiles_from_section(trt: TrtSection) -> list[Profile]:
    """One profile per trt.profile_batches entry (sorted, unique), else min/opt/max; bad orders are usage errors."""
    if trt.profile_batches:
        bad = [b for b in trt.profile_batches if b < 1]
        if bad:
            raise UsageError(f"trt.profile_batches: batches must be >= 1, got {bad}")
        return [Profile(b, b, b) for b in sorted(set(trt.profile_batches))]
    if not trt.min_batch <= trt.opt_batch <= trt.max_batch:
        raise UsageError(
            f"trt: expected min_batch <= opt_batch <= max_batch, got {trt.min_batch}, {trt.opt_batch}, {trt.max_batch}"
        )
    return [Profile(trt.min_batch, trt.opt_batch, trt.max_batch)]
