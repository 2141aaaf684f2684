"""Optimization profiles from the [trt] recipe section (no TensorRT needed)."""

from __future__ import annotations

import pytest

from cplitool.deploy.trt.profiles import Profile, profiles_from_section
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.sections import TrtSection


def test_default_section_gives_one_min_opt_max_profile() -> None:
    (p,) = profiles_from_section(TrtSection())
    assert p == Profile(1, 64, 256)
    assert p.shapes((3, 32, 32)) == ((1, 3, 32, 32), (64, 3, 32, 32), (256, 3, 32, 32))
    assert p.covers(1) and p.covers(256) and not p.covers(257)


def test_profile_batches_give_one_exact_profile_per_batch() -> None:
    profiles = profiles_from_section(TrtSection(profile_batches=[64, 1, 8, 64]))
    assert profiles == [Profile(1, 1, 1), Profile(8, 8, 8), Profile(64, 64, 64)]  # sorted, de-duplicated
    assert profiles[1].shapes((3, 16, 112, 112))[1] == (8, 3, 16, 112, 112)  # 5-D inputs too
    assert profiles[0].to_dict() == {"min": 1, "opt": 1, "max": 1}


@pytest.mark.parametrize(("lo", "opt", "hi"), [(8, 4, 16), (1, 64, 32)])
def test_out_of_order_range_is_a_usage_error(lo: int, opt: int, hi: int) -> None:
    with pytest.raises(UsageError, match=rf"min_batch <= opt_batch <= max_batch, got {lo}, {opt}, {hi}"):
        profiles_from_section(TrtSection(min_batch=lo, opt_batch=opt, max_batch=hi))


def test_nonpositive_profile_batch_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"trt\.profile_batches"):
        profiles_from_section(TrtSection(profile_batches=[0, 8]))
