from __future__ import annotations

import math

import pytest

from cplitool.deploy.bench.stats import median, percentile, summarize, throughput


def test_percentile_is_nearest_rank_as_trtexec_defines_it() -> None:
    ten = [float(v) for v in range(1, 11)]
    # trtexec: index = n - 1 - int((1 - p/100) * n); for n = 10, p90 excludes one sample -> the 9th value.
    assert percentile(ten, 90) == 9.0
    assert percentile(ten, 95) == 10.0
    assert percentile(ten, 99) == 10.0
    assert percentile(ten, 50) == 5.0
    hundred = [float(v) for v in range(1, 101)]
    assert [percentile(hundred, p) for p in (90, 95, 99)] == [90.0, 95.0, 99.0]
    seven = [float(v) for v in range(1, 8)]
    assert percentile(seven, 90) == 7.0  # int(0.1 * 7) = 0 samples excluded
    assert percentile(ten, 0) == 1.0
    assert percentile(ten, 100) == 10.0


def test_percentile_rejects_out_of_range_and_empty_is_infinite() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    assert math.isinf(percentile([], 90))


def test_median_averages_the_two_middle_values_of_an_even_count() -> None:
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert median([1.0, 2.0, 30.0]) == 2.0
    assert median([4.0]) == 4.0


def test_summarize_fields() -> None:
    s = summarize([3.0, 1.0, 2.0, 4.0])
    assert (s.count, s.min, s.max, s.mean, s.median) == (4, 1.0, 4.0, 2.5, 2.5)
    assert s.std == pytest.approx(math.sqrt(1.25))
    assert s.cv == pytest.approx(math.sqrt(1.25) / 2.5)
    assert (s.p90, s.p95, s.p99) == (4.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        summarize([])


def test_throughput_is_images_per_second() -> None:
    assert throughput(64, 100, 2.0) == 3200.0
    assert throughput(1, 10, 0.0) == 0.0
