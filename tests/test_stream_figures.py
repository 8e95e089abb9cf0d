"""Stream figures, the schedule and LoadGen's early-stopping rule as pure functions: exact fixtures,
scipy for the binomial, simulated boards for the --find-max search."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from device_agents.linux import tflite_agent as agent
from device_agents.wire import serial_frames
from harness import stats
from harness.results import early_stopping as es
from harness.results.early_stopping import Judge
from harness.results.stream import Trial, figures, frames_of, stream_from_lines
from harness.scenarios.find_max import Tried, next_rate

MS = 1_000_000


# --- LoadGen's rule ------------------------------------------------------------------------------

def test_the_minimum_frames_of_a_claim_come_from_the_binomial_rule() -> None:
    """64 frames for a p90 claim and 662 for p99 at a confidence of 0.99, as LoadGen asks: the
    fewest frames n for which one miss in n is unlikely (below 1 %) when the true rate of misses
    is 10 % (1 %), i.e. P(Binomial(n, 1 - p) <= 1) < 0.01, and no fewer frames satisfy it."""
    for p, expected in ((0.90, 64), (0.99, 662)):
        assert es.frames_needed(0, p, 0.99) == expected
        assert es.frames_needed(1, p, 0.99) == expected
        assert sps.binom.cdf(1, expected, 1 - p) < 0.01 <= sps.binom.cdf(1, expected - 1, 1 - p)
    assert es.min_passing(0, 0.9, 0.99) == math.ceil(math.log(0.01) / math.log(0.9)) == 44


@pytest.mark.parametrize("p", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("misses", [0, 1, 2, 5, 17])
def test_min_passing_is_the_first_h_whose_odds_fall_under_one_minus_c(p: float, misses: int) -> None:
    h = es.min_passing(misses, p, 0.99)
    # odds(h, t) = P(at most t misses in h + t frames): scipy's binomial CDF
    assert sps.binom.cdf(misses, h + misses, 1 - p) < 0.01
    assert sps.binom.cdf(misses, h - 1 + misses, 1 - p) >= 0.01
    assert es.overlatency_odds(h, misses, p) == pytest.approx(sps.binom.cdf(misses, h + misses, 1 - p), rel=1e-9)


def test_the_judge_passes_fails_and_keeps_its_first_verdict() -> None:
    j = Judge(max_frames=300, percentile=0.9, confidence=0.99)
    for _ in range(63):
        assert j.add(False) is None
    assert j.add(False) == "pass" and j.at == 64
    for _ in range(50):  # frames after the verdict are extra data, never a new verdict
        j.add(True)
    assert j.verdict == "pass" and j.at == 64
    fail = Judge(max_frames=200, percentile=0.9, confidence=0.99)
    while fail.verdict is None:
        fail.add(True)
    # the first count of misses whose claim needs more frames than the trial may run
    assert es.frames_needed(fail.misses, 0.9, 0.99) > 200 >= es.frames_needed(fail.misses - 1, 0.9, 0.99)
    assert fail.verdict == "fail" and fail.at == fail.misses


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=400), st.integers(64, 500))
def test_a_trial_run_to_its_end_is_always_decided(misses: list[bool], max_frames: int) -> None:
    j = Judge(max_frames, 0.9, 0.99)
    for m in (misses * (max_frames // len(misses) + 1))[:max_frames]:
        j.add(m)
    assert j.verdict in ("pass", "fail")  # the need either fits the trial or exceeds it


# --- the schedule (PROTOCOL.md, stream mode) -------------------------------------------------------

def test_fixed_arrivals_are_exact_multiples_of_the_period() -> None:
    assert agent.stream_schedule("fixed", 33_333_333, 4, 0) == [0, 33_333_333, 66_666_666, 99_999_999]


def test_poisson_arrivals_use_the_protocols_xorshift32_and_inverse_cdf() -> None:
    reference = serial_frames.xorshift32(7)
    ours = agent.xorshift32(7)
    assert [ours() for _ in range(1000)] == list(itertools.islice(reference, 1000))
    times = agent.stream_schedule("poisson", 10 * MS, 5, 7)
    draws = serial_frames.xorshift32(7)
    expected = [0]
    for _ in range(4):
        u = ((next(draws) >> 8) + 1) / 16777216.0
        expected.append(expected[-1] + math.floor(-math.log(u) * 10 * MS + 0.5))
    assert times == expected
    assert agent.stream_schedule("poisson", 10 * MS, 5, 0) == agent.stream_schedule("poisson", 10 * MS, 5, 0)
    assert agent.stream_schedule("poisson", 10 * MS, 5, 1) != agent.stream_schedule("poisson", 10 * MS, 5, 2)


def test_poisson_gaps_are_exponential_at_the_mean_rate() -> None:
    times = agent.stream_schedule("poisson", 5 * MS, 20_001, 3)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert stats.mean(gaps) == pytest.approx(5 * MS, rel=0.03)
    assert sps.kstest([g / (5 * MS) for g in gaps], "expon").pvalue > 0.001
    assert max(gaps) <= math.floor(-math.log(1 / 16777216.0) * 5 * MS + 0.5)  # the smallest u bounds a gap


# --- figures from frames ----------------------------------------------------------------------------

def chunk(first: int, rows: list[tuple[int, int | None, int | None]], deadline: int) -> dict[str, Any]:
    status = "".join("d" if e is None else ("l" if e - s > deadline else "o") for s, _, e in rows)
    return {"type": "stream", "first": first, "count": len(rows), "scheduled_ns": [r[0] for r in rows],
            "start_ns": [r[1] for r in rows], "end_ns": [r[2] for r in rows],
            "invoke_ns": [None if r[1] is None else 1000 for r in rows], "status": status}


def trial(rows: list[tuple[int, int | None, int | None]], period: int, deadline: int | None = None) -> Trial:
    deadline = deadline or period
    header = {"target": "t", "model": "m.tflite", "model_sha256": "0" * 64, "threads": 1, "plan": {}}
    plan = {"type": "stream_plan", "period_ns": period, "deadline_ns": deadline}
    return stream_from_lines(header, [plan, chunk(0, rows[:2], deadline), chunk(2, rows[2:], deadline)]).trials[0]


def test_figures_of_a_stream_that_keeps_up() -> None:
    p = 10 * MS
    rows = [(i * p, i * p + 2000, i * p + 2000 + 4 * MS) for i in range(5)]
    f = figures(trial(rows, p))
    assert (f.frames, f.processed, f.late, f.dropped) == (5, 5, 0, 0)
    assert f.latency is not None and f.latency.median_ns == 4 * MS + 2000 and f.latency.max_ns == 4 * MS + 2000
    assert f.queue_delay_median_ns == 2000 and f.start_jitter_ns == 2000  # every frame found the board idle
    assert f.sustained_rate_hz == pytest.approx(100.0)  # completions 10 ms apart
    assert f.busy_fraction == pytest.approx(5 * 4 * MS / (4 * p + 2000 + 4 * MS))
    assert f.service_median_ns == 4 * MS


def test_queued_frames_count_their_wait_and_are_not_jitter() -> None:
    """Service 15 ms at a 10 ms period: each frame waits longer; its latency includes the wait."""
    p, s = 10 * MS, 15 * MS
    rows = [(i * p, i * s, (i + 1) * s) for i in range(4)]
    f = figures(trial(rows, p))
    assert f.late == 4 and f.late_pct == 100.0
    assert f.latency is not None and f.latency.max_ns == 4 * s - 3 * p
    assert f.start_jitter_ns == 0  # only the first frame found the board idle
    assert f.queue_delay_median_ns == round(stats.median([0, 5 * MS, 10 * MS, 15 * MS]))
    assert f.sustained_rate_hz == pytest.approx(1e9 / s)
    assert f.busy_fraction == pytest.approx(1.0)


def test_dropped_frames_have_no_times_and_count_as_misses() -> None:
    p = 10 * MS
    rows = [(0, 0, 15 * MS), (p, 15 * MS, 30 * MS), (2 * p, None, None), (3 * p, 30 * MS, 45 * MS)]
    f = figures(trial(rows, p))
    assert (f.processed, f.dropped, f.late) == (3, 1, 3)
    assert f.dropped_pct == 25.0 and f.missed_pct == 100.0
    assert f.latency is not None and f.latency.n == 3


def test_frames_are_placed_by_index_so_a_lost_message_leaves_a_gap() -> None:
    rows = [(i, i, i + 1) for i in range(6)]
    frames = frames_of([chunk(4, rows[4:], 10), chunk(0, rows[:2], 10)])
    assert frames.index == (0, 1, 4, 5) and frames.scheduled_ns == (0, 1, 4, 5)


# --- the search (LoadGen's FindPeakPerformance), on simulated boards --------------------------------

def simulated_search(capacity_hz: float, start_hz: float, noise: float = 0.0) -> tuple[float | None, int]:
    """A board that passes every rate under its capacity (and fails from ``noise`` below it)."""
    tried: list[Tried] = []
    while (rate := next_rate(tried, start_hz, 0.02, 20)) is not None:
        tried.append(Tried(rate, rate < capacity_hz * (1 - noise), 1e9 / capacity_hz))
    passes = [t.rate_hz for t in tried if t.passed]
    return (max(passes) if passes else None), len(tried)


@pytest.mark.parametrize("start", [1.0, 30.0, 99.0, 500.0])
def test_the_search_finds_the_capacity_within_its_precision(start: float) -> None:
    found, trials = simulated_search(100.0, start)
    assert found is not None and 98.0 <= found < 100.0
    assert trials <= 12


def test_a_board_that_keeps_no_rate_ends_the_search() -> None:
    found, trials = simulated_search(0.001, 30.0)
    assert found is None and trials < 20


def test_widening_doubles_when_the_measured_capacity_is_not_above_the_pass() -> None:
    # a passing trial at 50 Hz whose frames took 30 ms (a capacity of 33 Hz): widen by doubling
    assert next_rate([Tried(50.0, True, 30 * MS)], 50.0, 0.02, 20) == 100.0
    assert next_rate([Tried(50.0, True, 10 * MS)], 50.0, 0.02, 20) == pytest.approx(125.0)
    assert next_rate([Tried(50.0, False, 10 * MS)], 50.0, 0.02, 20) == 25.0
    assert next_rate([Tried(50.0, True), Tried(60.0, False)], 50.0, 0.02, 20) == 55.0
    assert next_rate([Tried(50.0, True), Tried(50.5, False)], 50.0, 0.02, 20) is None
