"""The statistics are pure: exact fixtures, then properties that must hold for any samples."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import stats

samples = st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=200)


def test_exact_fixture() -> None:
    s = stats.describe([1, 2, 3, 4, 100])
    assert (s.n, s.median, s.mean, s.min, s.max) == (5, 3.0, 22.0, 1.0, 100.0)
    # type-7 percentiles: position (n - 1) * q = 3.6 for p90 -> 4 + 0.6 * (100 - 4)
    assert s.p90 == pytest.approx(61.6)
    assert s.p99 == pytest.approx(4 + 0.96 * 96)
    assert s.stdev == pytest.approx(math.sqrt(7610 / 4))  # squared deviations sum to 7610; n - 1


def test_even_count_median_and_single_value() -> None:
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.describe([7]).stdev == 0.0


def test_empty_and_bad_input_are_errors() -> None:
    with pytest.raises(ValueError):
        stats.describe([])
    with pytest.raises(ValueError):
        stats.percentile([1, 2], 101)
    with pytest.raises(ValueError):
        stats.share(0, 1)


def test_share() -> None:
    assert stats.share(100, 16) == pytest.approx(0.84)


@given(samples)
def test_order_statistics_are_ordered(values: list[int]) -> None:
    s = stats.describe(values)
    assert s.min <= s.median <= s.p90 <= s.p99 <= s.max
    assert s.min <= s.mean <= s.max
    assert s.stdev >= 0


@given(samples, st.randoms())
def test_permutation_invariance(values: list[int], rnd) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)
    a, b = stats.describe(shuffled), stats.describe(values)
    for name in ("n", "median", "p90", "p99", "min", "max"):
        assert getattr(a, name) == getattr(b, name)  # order statistics: exactly equal
    assert a.mean == pytest.approx(b.mean, rel=1e-12)  # sums: equal up to rounding order
    assert a.stdev == pytest.approx(b.stdev, rel=1e-9, abs=1e-6)


@given(samples, st.integers(min_value=1, max_value=1000))
def test_scale_equivariance(values: list[int], k: int) -> None:
    a, b = stats.describe(values), stats.describe([v * k for v in values])
    for name in ("median", "mean", "p90", "p99", "stdev", "min", "max"):
        assert getattr(b, name) == pytest.approx(k * getattr(a, name), rel=1e-9, abs=1e-6)


@given(samples, st.integers(min_value=-10**6, max_value=10**6))
def test_shift_moves_location_not_spread(values: list[int], c: int) -> None:
    a, b = stats.describe(values), stats.describe([v + c for v in values])
    assert b.median == pytest.approx(a.median + c)
    assert b.stdev == pytest.approx(a.stdev, rel=1e-6, abs=1e-3)
