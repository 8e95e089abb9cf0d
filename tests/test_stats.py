"""The statistics are pure: exact fixtures, then properties that must hold for any samples."""

from __future__ import annotations

import math

import numpy as np
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


def test_mad_exact() -> None:
    assert stats.mad([1, 2, 3, 4, 100]) == 1.0  # deviations 2, 1, 0, 1, 97 from the median 3
    assert stats.mad([5, 5, 5]) == 0.0


def test_t975_matches_scipy() -> None:
    from scipy.stats import t  # an independent implementation (scipy comes with scikit-learn)

    for df in [*range(1, 60), 100, 1000, 10**6]:
        assert stats.t975(df) == pytest.approx(t.ppf(0.975, df), rel=2e-5), df


def test_t975_falls_towards_the_normal_quantile_and_refuses_no_freedom() -> None:
    values = [stats.t975(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] > 1.959963984540054
    with pytest.raises(ValueError):
        stats.t975(0)


def test_block_share_halfwidth_exact() -> None:
    # per-block shares 0.85, 0.8, 0.8, 0.75: sd = sqrt(0.005 / 3), se = sd / 2, t(0.975, 3) = 3.182446
    half = stats.block_share_halfwidth([100, 100, 100, 100], [15, 20, 20, 25])
    assert half == pytest.approx(3.182446 * math.sqrt(0.005 / 3) / 2)
    # two blocks: shares 0.9 and 0.7, sd = 0.1414, se = 0.1, t(0.975, 1) = 12.706205
    assert stats.block_share_halfwidth([100, 200], [10, 60]) == pytest.approx(1.2706205)
    assert stats.block_share_halfwidth([100, 100], [20, 20]) == 0.0  # identical blocks
    assert stats.block_share_halfwidth([100], [20]) is None  # one block: nothing to compare it with
    with pytest.raises(ValueError):
        stats.block_share_halfwidth([100, 100], [20])
    with pytest.raises(ValueError):
        stats.block_share_halfwidth([100, 0], [20, 0])


def test_amdahl() -> None:
    assert stats.amdahl(0.5, 2) == pytest.approx(4 / 3)
    assert stats.amdahl(0.9, math.inf) == pytest.approx(10.0)
    assert stats.amdahl(0.0, 2) == 1.0
    assert stats.amdahl(1.0, math.inf) == math.inf
    with pytest.raises(ValueError):
        stats.amdahl(0.5, 0)


blocks = st.lists(st.tuples(st.integers(min_value=1, max_value=10**9), st.floats(min_value=0, max_value=1)),
                  min_size=2, max_size=40)


@given(blocks, st.randoms(), st.integers(min_value=1, max_value=1000))
def test_share_halfwidth_depends_on_the_shares_only(pairs: list[tuple[int, float]], rnd, k: int) -> None:
    """Block order and the unit of time do not matter; only the per-block shares do."""
    with_ns = [w for w, _ in pairs]
    without_ns = [w * f for w, f in pairs]
    half = stats.block_share_halfwidth(with_ns, without_ns)
    assert half is not None and half >= 0
    order = list(range(len(pairs)))
    rnd.shuffle(order)
    shuffled = stats.block_share_halfwidth([with_ns[i] for i in order], [without_ns[i] for i in order])
    scaled = stats.block_share_halfwidth([k * w for w in with_ns], [k * o for o in without_ns])
    assert shuffled == pytest.approx(half, rel=1e-9, abs=1e-12)
    assert scaled == pytest.approx(half, rel=1e-9, abs=1e-12)


@given(st.floats(min_value=0, max_value=0.99), st.floats(min_value=1, max_value=1e6))
def test_amdahl_is_bounded_by_the_infinite_speedup(share: float, factor: float) -> None:
    gain = stats.amdahl(share, factor)
    assert 1.0 <= gain <= stats.amdahl(share, math.inf) * (1 + 1e-12)
    assert gain <= factor * (1 + 1e-12)


def test_share_interval_covers_the_true_share_95_percent_of_the_time() -> None:
    """Simulated runs of 10 blocks whose shares scatter around a known 0.8, with loop times that
    vary from block to block: the interval must hold the truth about 95 % of the time, no less
    (overconfident) and no more (too wide to be useful)."""
    rng = np.random.default_rng(7)
    true_share, runs, hits = 0.8, 4000, 0
    for _ in range(runs):
        w = 1e6 * (1 + 0.1 * rng.random(10))
        o = w * (1 - (true_share + 0.02 * rng.standard_normal(10)))
        half = stats.block_share_halfwidth(list(w), list(o))
        assert half is not None
        hits += abs(float(np.mean((w - o) / w)) - true_share) <= half
    assert 0.93 <= hits / runs <= 0.97  # binomial sd at 4000 runs: 0.0034


def test_mean_interval_exact_fixture() -> None:
    # medians 90, 100, 110: mean 100, s = 10, half-width t975(2) * 10 / sqrt(3)
    lo, hi = stats.mean_interval([110, 90, 100])  # type: ignore[misc]
    half = 4.302653 * 10 / math.sqrt(3)
    assert (lo, hi) == (pytest.approx(100 - half), pytest.approx(100 + half))
    assert stats.mean_interval([5, 5, 5]) == (5.0, 5.0)


def test_mean_interval_needs_two_values() -> None:
    assert stats.mean_interval([]) is None
    assert stats.mean_interval([42.0]) is None


medians = st.lists(st.integers(min_value=1, max_value=10**9), min_size=2, max_size=60)


@given(medians, st.randoms())
def test_mean_interval_brackets_the_mean_and_ignores_order(values: list[int], rnd) -> None:
    ci = stats.mean_interval(values)
    assert ci is not None
    lo, hi = ci
    assert lo <= stats.mean(values) <= hi or hi - lo < 1e-6
    assert (hi + lo) / 2 == pytest.approx(stats.mean(values), rel=1e-9)
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert stats.mean_interval(shuffled) == pytest.approx(ci, rel=1e-9)


@given(medians, st.integers(min_value=1, max_value=1000), st.integers(min_value=-10**6, max_value=10**6))
def test_mean_interval_moves_with_shift_and_scales_with_scale(values: list[int], k: int, c: int) -> None:
    lo, hi = stats.mean_interval(values)  # type: ignore[misc]
    slo, shi = stats.mean_interval([k * v + c for v in values])  # type: ignore[misc]
    assert shi - slo == pytest.approx(k * (hi - lo), rel=1e-6, abs=1e-3)
    assert (slo + shi) / 2 == pytest.approx(k * (lo + hi) / 2 + c, rel=1e-9)


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=2, max_size=30))
def test_mean_interval_narrows_as_the_same_spread_repeats(values: list[int]) -> None:
    # the same medians seen twice as often: s barely changes, sqrt(n) and t975 make it narrower
    lo, hi = stats.mean_interval(values)  # type: ignore[misc]
    lo2, hi2 = stats.mean_interval(values * 2)  # type: ignore[misc]
    assert hi2 - lo2 <= hi - lo + 1e-6
