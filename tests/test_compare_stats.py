"""The comparison's statistics: the tests and the ratio's interval against scipy (an independent
implementation: it comes with scikit-learn in the test extra) and against simulations with a known
answer: equal distributions, a 5 % shift, drift inside a run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import stats
from harness.results.benchmark import Benchmark, Block
from harness.results.compare import Pair, Side, compare

scipy_stats = pytest.importorskip("scipy.stats")

values = st.lists(st.floats(min_value=1, max_value=1e9, allow_nan=False), min_size=1, max_size=40)


@pytest.mark.parametrize("m, n", [(1, 1), (2, 3), (3, 3), (4, 7), (10, 10), (5, 40), (50, 50)])
def test_mann_whitney_exact_matches_scipy(m: int, n: int) -> None:
    rng = np.random.default_rng(m * 100 + n)
    for shift in (0.0, 0.5, 2.0):
        a, b = rng.normal(0, 1, m), rng.normal(shift, 1, n)
        ours, theirs = stats.mann_whitney_u(a, b), scipy_stats.mannwhitneyu(a, b, method="exact")
        assert ours.method == "exact"
        assert ours.statistic == theirs.statistic
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_with_ties_or_many_values_is_asymptotic_as_scipy() -> None:
    rng = np.random.default_rng(1)
    for a, b in [(np.round(rng.normal(0, 1, 30), 1), np.round(rng.normal(0.4, 1, 25), 1)),  # ties
                 (rng.normal(0, 1, 60), rng.normal(0.1, 1, 70)),  # over EXACT_MAX_PAIRS
                 ([5, 5, 5], [5, 5, 5]), ([1, 2, 2, 3], [2, 2, 2])]:
        ours, theirs = stats.mann_whitney_u(a, b), scipy_stats.mannwhitneyu(a, b, method="asymptotic")
        assert ours.method == "asymptotic"
        assert ours.statistic == theirs.statistic
        assert ours.p_value == pytest.approx(theirs.pvalue if not math.isnan(theirs.pvalue) else 1.0, rel=1e-9)


@given(values, values)
def test_mann_whitney_is_symmetric_and_rank_based(a: list[float], b: list[float]) -> None:
    r = stats.mann_whitney_u(a, b)
    assert 0 <= r.p_value <= 1
    assert stats.mann_whitney_u(b, a).p_value == pytest.approx(r.p_value, rel=1e-9)
    # an order-preserving (or reversing) map of the values changes no rank, so no p
    assert stats.mann_whitney_u([2 * x for x in a], [2 * x for x in b]).p_value == pytest.approx(r.p_value, rel=1e-9)
    assert stats.mann_whitney_u([-x for x in a], [-x for x in b]).p_value == pytest.approx(r.p_value, rel=1e-9)
    if len(set(a) | set(b)) == len(a) + len(b):  # no ties: the exact p, never below its smallest
        assert r.p_value >= stats.mann_whitney_min_p(len(a), len(b)) - 1e-12


def test_the_exact_distribution_counts_every_ordering() -> None:
    for m, n in [(1, 1), (3, 5), (8, 9), (12, 12)]:
        counts = stats._u_counts(m, n)
        assert len(counts) == m * n + 1 and sum(counts) == math.comb(m + n, m)
        assert counts == counts[::-1]  # U and mn - U are equally likely
    assert stats.mann_whitney_min_p(3, 3) == pytest.approx(0.1)
    assert stats.mann_whitney_min_p(4, 4) == pytest.approx(2 / 70)


@pytest.mark.parametrize("m, n", [(2, 2), (3, 3), (3, 8), (10, 10), (40, 5)])
def test_welch_matches_scipy(m: int, n: int) -> None:
    rng = np.random.default_rng(m + 7 * n)
    for scale in (1.0, 3.0):
        a, b = rng.normal(0, 1, m), rng.normal(0.8, scale, n)
        ours, theirs = stats.welch_t(a, b), scipy_stats.ttest_ind(b, a, equal_var=False)
        assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-12)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)


def test_welch_edge_cases() -> None:
    assert stats.welch_t([5, 5], [5, 5]).p_value == 1.0
    assert stats.welch_t([5, 5], [6, 6]).p_value == 0.0
    with pytest.raises(ValueError):
        stats.welch_t([1], [1, 2])


def test_student_t_and_incomplete_beta_match_scipy() -> None:
    for df in (0.5, 1, 1.7, 2, 4.3, 10, 30, 120, 1e4):
        for t in (0.0, 0.1, 1.0, 2.0, 4.3, 12.7, 50.0):
            assert stats.student_t_sf(t, df) == pytest.approx(scipy_stats.t.sf(t, df), rel=1e-8, abs=1e-300)
            assert stats.student_t_sf(-t, df) == pytest.approx(scipy_stats.t.cdf(t, df), rel=1e-8)
    from scipy.special import betainc

    for a, b, x in [(0.5, 0.5, 0.3), (5, 0.5, 0.99), (50, 50, 0.5), (2, 30, 0.01), (0.1, 8, 0.7)]:
        assert stats.betainc(a, b, x) == pytest.approx(betainc(a, b, x), rel=1e-9)
    assert stats.student_t_sf(stats.t975(5), 5) == pytest.approx(0.025, rel=1e-5)


@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=2, max_size=20),
       st.lists(st.floats(min_value=1, max_value=1e6), min_size=2, max_size=20),
       st.floats(min_value=0.01, max_value=100))
@settings(max_examples=50)
def test_ratio_interval_scales_with_the_candidate_and_brackets_the_ratio(a: list[float], b: list[float],
                                                                          k: float) -> None:
    lo, hi = stats.ratio_interval(a, b)
    ratio = stats.median(b) / stats.median(a)
    assert 0 < lo <= hi
    assert lo <= ratio * (1 + 1e-9) and ratio <= hi * (1 + 1e-9)
    slo, shi = stats.ratio_interval(a, [k * x for x in b])
    assert (slo, shi) == (pytest.approx(k * lo, rel=1e-9), pytest.approx(k * hi, rel=1e-9))
    assert stats.ratio_interval(a, b) == (lo, hi)  # seeded: the same every time


@pytest.mark.parametrize("dist", ["normal", "lognormal", "skewed"])
def test_ratio_interval_covers_the_true_ratio_95_percent_of_the_time(dist: str) -> None:
    """10 units a side, a true ratio of medians of 1.05: the interval holds it about 95 % of the
    time, no less (overconfident) and not much more (too wide to be useful)."""
    rng = np.random.default_rng({"normal": 1, "lognormal": 2, "skewed": 3}[dist])
    draw = {"normal": lambda m: m * (1 + 0.02 * rng.standard_normal(10)),
            "lognormal": lambda m: m * np.exp(0.05 * rng.standard_normal(10)),
            "skewed": lambda m: m / 100 * (100 + rng.exponential(3, 10) - 3 * math.log(2))}[dist]  # median m
    runs = 600
    hits = 0
    for _ in range(runs):
        lo, hi = stats.ratio_interval(draw(100.0), draw(105.0), seed=int(rng.integers(1 << 30)))
        hits += lo <= 1.05 <= hi
    assert 0.92 <= hits / runs <= 0.985  # binomial sd at 600 runs: 0.009


# Benchmarks built in memory from samples (pure logic: the store is exercised in test_compare.py).

def bench(with_blocks: list[np.ndarray], model: str = "m.tflite") -> Benchmark:
    blocks = tuple(Block("with", i, tuple(int(x) + 1000 for x in w), {"invoke": tuple(int(x) for x in w)}, None, None)
                   for i, w in enumerate(with_blocks))
    return Benchmark(target="local", model=model, model_sha256="0" * 64, threads=1, plan={},
                     hello={"board": {"cpu": "x"}, "runtime": {"name": "rt", "version": "1"}},
                     model_info={"xnnpack": True}, blocks=blocks)


def pair(a: list[np.ndarray], b: list[np.ndarray]) -> Pair:
    return Pair("run", Side(bench(a), "A"), Side(bench(b), "B"))


def steady(rng: np.random.Generator, median: float, blocks: int, n: int = 100) -> list[np.ndarray]:
    return [median * (1 + 0.01 * rng.standard_normal()) * (1 + 0.02 * rng.standard_normal(n)) for _ in range(blocks)]


def test_equal_distributions_give_no_significant_difference_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    runs = 600
    verdicts = [compare(pair(steady(rng, 60_000, 10), steady(rng, 60_000, 10))).verdict for _ in range(runs)]
    false = sum(v != "no significant difference" for v in verdicts)
    assert 0.02 <= false / runs <= 0.08  # 10 vs 10 exact U: a size of 0.043; binomial sd 0.009
    c = compare(pair(steady(rng, 60_000, 10), steady(rng, 60_000, 10)))
    assert (c.unit, c.test, len(c.baseline_units)) == ("block-median", "mann-whitney-u", 10)


def test_welch_on_three_units_keeps_its_false_positive_rate() -> None:
    """3 against 3 units, where Mann-Whitney can never reach 5 %: Welch's t is used, and on equal
    normal distributions it rejects about 5 % of the time (a little less: Welch is conservative)."""
    rng = np.random.default_rng(12)
    runs = 4000
    false = sum(stats.welch_t(rng.normal(0, 1, 3), rng.normal(0, 1, 3)).p_value < stats.ALPHA for _ in range(runs))
    assert 0.025 <= false / runs <= 0.065


def test_a_5_percent_shift_is_detected_with_enough_blocks() -> None:
    rng = np.random.default_rng(13)

    def power(blocks: int, runs: int = 200) -> tuple[float, float]:
        found = covered = 0
        for _ in range(runs):
            c = compare(pair(steady(rng, 60_000, blocks), steady(rng, 63_000, blocks)))
            found += c.verdict == "slower"
            covered += c.ratio_ci is not None and c.ratio_ci[0] <= 1.05 <= c.ratio_ci[1]
        return found / runs, covered / runs

    few, _ = power(3)
    many, covered = power(20)
    assert many >= 0.97 and covered >= 0.9
    assert few < many  # 3 blocks a side: Welch's t on 3 units, far less power


def drifting_run(rng: np.random.Generator, blocks: int = 10, half: int = 200) -> list[np.ndarray]:
    """The with-Invoke halves of one run of ABBA blocks on a board that drifts: a slow wander
    (AR(1), correlation time 100 iterations, half a block, 3 % sd), a warming ramp of 4 % over the
    run, and 2 % noise per iteration; the without-Invoke halves take their time in between.
    (A wander as slow as a whole block leaks into the block medians: with a correlation time of
    200 iterations their false-positive rate is about 7.5 %, which README.md states.)"""
    total, phi, sd = blocks * 2 * half, 0.99, 0.03
    wander = np.empty(total)
    wander[0] = sd * rng.standard_normal()
    noise = sd * math.sqrt(1 - phi**2) * rng.standard_normal(total)
    for t in range(1, total):
        wander[t] = phi * wander[t - 1] + noise[t]
    level = 60_000 * (1 + wander + 0.04 * np.arange(total) / total) * (1 + 0.02 * rng.standard_normal(total))
    halves = level.reshape(blocks, 2, half)
    return [halves[b, b % 2] for b in range(blocks)]  # ABBA: the with half first in even blocks


def test_drift_inside_a_run_is_not_a_difference_between_runs() -> None:
    """Two runs drawn from the same drifting process: a test over the raw samples calls most pairs
    different (it takes 2,000 correlated samples for 2,000 independent ones); the block-median
    test keeps its 5 %."""
    rng = np.random.default_rng(14)
    runs = 200
    raw = blocked = 0
    for _ in range(runs):
        a, b = drifting_run(rng), drifting_run(rng)
        raw += stats.mann_whitney_u(np.concatenate(a), np.concatenate(b)).p_value < stats.ALPHA
        c = compare(pair(a, b))
        assert c.unit == "block-median" and len(c.baseline_units) == 10
        blocked += c.significant
    assert raw / runs > 0.5
    assert blocked / runs <= 0.08  # binomial sd at 200 runs: 0.015
