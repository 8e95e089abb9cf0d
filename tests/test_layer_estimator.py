"""The per-layer estimator against a simulated board whose layer times are known (tests/profilesim.py:
the agent's schedule, jitter, preemptions, drift, episodes of a slower machine), and the adaptive
stop rule of harness.scenarios.profile driven by that board. Pure logic: the real agent and
runtimes are in tests/test_prefixes.py and tests/test_profile_e2e.py.

Each test that claims the estimator cancels something also shows that the thing is there to
cancel: the counterfactual (one order of turns alone, or the estimator before this one, the
median of raw per-turn differences) misses by many standard errors on the same samples.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from harness.lab.drivers.base import Emit
from harness.models.analysis import ModelAnalysis, OpInfo
from harness.plan import ProfileJob, ProfilePlan
from harness.render.analysis import profile_lines, profile_table
from harness.results.layers import LayerProfile, layer_profile, profile_from_record
from harness.scenarios.profile import MIN_ROUNDS, next_session, run_sessions
from tests.profilesim import SimBoard, naive_layers, simulate

SLICES = 5
# 33 ops like a small vision model's: ten of 20 µs, three tiny ones (0, 30 and 50 ns: a RESHAPE,
# a cheap ADD) that no profile can tell from zero, twenty between 2 and 40 µs.
LAYERS = tuple([20_000.0] * 10 + [50.0, 0.0, 30.0]
               + [float(x) for x in np.random.default_rng(1).uniform(2_000, 40_000, 20)])
TINY = (10, 11, 12)
# A loaded sibling core: 30 % of the time the board is 1.6x slower, in episodes of a few turns
# (a turn here is about 30 ms), as on the 2-core development machine.
EPISODES = {"slow": 1.6, "slow_share": 0.3, "episode_s": 0.1}


def ops_of(n: int) -> ModelAnalysis:
    ops = tuple(OpInfo(i, "ADD", "compute", (), (), 2, 0, 0, "float32") for i in range(n))
    return ModelAnalysis("m", 0, 0, ops, "float32", 0, 0, (), ())


def estimate(board: SimBoard, rounds: int = 20, slices: int = SLICES, **sim: Any) -> LayerProfile:
    run = simulate(board, rounds, slices=slices, **sim)
    return layer_profile(ops_of(len(board.layers_ns)), run.rounds_ns, slices=slices, forward=run.forward)


def truth(board: SimBoard, p: LayerProfile) -> np.ndarray:
    """The board's layer times at the profile's scale (the median speed: whole_ns of the profile)."""
    return np.asarray(board.layers_ns) * p.whole_ns / board.whole_ns


@pytest.mark.parametrize("seed", range(4))
def test_sum_check_is_within_its_se_on_a_board_with_speed_episodes(seed: int) -> None:
    board = SimBoard(LAYERS, seed=seed, **EPISODES)
    run = simulate(board, 20, slices=SLICES)
    p = layer_profile(ops_of(len(LAYERS)), run.rounds_ns, slices=SLICES, forward=run.forward)
    assert 0 < p.sum_check_se < 0.01
    assert abs(p.sum_check) <= 3 * p.sum_check_se, (p.sum_check, p.sum_check_se)
    # Medians of raw differences over a mixture of speeds do not add up: the old estimator's
    # sum check is off by many of the new one's SE on the same samples.
    _, naive_check = naive_layers(run.rounds_ns, SLICES)
    assert abs(naive_check) > 5 * p.sum_check_se, (naive_check, p.sum_check_se)


@pytest.mark.parametrize("kind", [{}, EPISODES, {"preempt": 0.01}], ids=["quiet", "episodes", "preempted"])
def test_known_layer_times_fall_in_their_intervals(kind: dict[str, float]) -> None:
    board = SimBoard(LAYERS, seed=7, **kind)
    p = estimate(board)
    known = truth(board, p)
    inside = [layer.interval_ns is not None and layer.interval_ns[0] <= t <= layer.interval_ns[1]
              for layer, t in zip(p.layers, known, strict=True)]
    assert sum(inside) >= 0.85 * len(LAYERS)  # 95 % intervals, from a bootstrap of 100 turns
    big = [i for i, t in enumerate(LAYERS) if t >= 10_000]
    errors = [abs(p.layers[i].ns - known[i]) / known[i] for i in big]
    assert float(np.median(errors)) < 0.02, errors  # jitter 1 % of a 400 µs prefix is 4 µs a sample


def test_tiny_layers_are_below_resolution_and_no_time_is_negative() -> None:
    board = SimBoard(LAYERS, seed=3, **EPISODES)
    p = estimate(board)
    below = [row.first for row in p.groups if not row.resolved]
    assert set(TINY) <= set(below)
    assert all(LAYERS[i] < 2_000 for i in below)  # every op of 2 µs and more is resolved
    assert all(row.ns > 0 and row.interval_ns is not None and row.interval_ns[0] > 0
               for row in p.groups if row.resolved)
    assert [layer.resolved for layer in p.layers] == [row.resolved for row in p.groups]
    # The sum check adds the raw medians, the unresolved included: clipping them would bias it.
    assert p.sum_ns == pytest.approx(sum(row.ns for row in p.groups))
    # What a reader sees: "< upper end" or "~0" for those rows, never a negative time.
    console = Console(width=200, record=True)
    console.print(profile_table(p, top=len(LAYERS)))
    text = console.export_text()
    for i in TINY:
        line = next(line for line in text.splitlines() if "│" in line and line.split("│")[1].strip() == str(i))
        time = line.split("│")[3].strip()
        assert time.startswith("<") or time == "~0", line
    times = [line.split("│")[3].strip() for line in text.splitlines() if line.count("│") > 3]
    assert len(times) == len(LAYERS) and not any(t.startswith("-") for t in times)
    assert any(f"{len(below)} of {len(LAYERS)} rows below resolution" in line for line in profile_lines(p))


def test_a_drift_within_each_turn_cancels_between_forward_and_reverse_turns() -> None:
    """One turn per round, rounds alternating forward and reverse, on a board that slows by 50 %
    a second: in a forward turn prefix k+1 is timed after prefix k and gains the drift, in a
    reverse turn it loses it. Each order alone is biased; the mean of the two orders' medians is
    not, even with one more forward turn than reverse (where one median over all turns lands in
    the forward turns' cluster)."""
    layers = tuple(float(x) for x in np.random.default_rng(1).uniform(5_000, 40_000, 30))
    board = SimBoard(layers, drift_per_s=0.5, jitter=0.003)
    run = simulate(board, 21, slices=1, per_slice=10)

    def late_bias(rounds: slice) -> tuple[float, float]:
        p = layer_profile(ops_of(len(layers)), run.rounds_ns[rounds], slices=1, forward=run.forward[rounds])
        rel = (np.array([layer.ns for layer in p.layers]) - truth(board, p)) / truth(board, p)
        return float(rel[-10:].mean()), float(np.abs(rel).max())

    forward, reverse, both = late_bias(slice(0, None, 2)), late_bias(slice(1, None, 2)), late_bias(slice(None))
    assert all(run.forward[r] == [r % 2 == 0] for r in range(21))
    assert forward[0] > 0.03 and reverse[0] < -0.03  # the drift is there: the late layers' times move
    assert abs(both[0]) < 0.01 and both[1] < 0.04, both


@settings(max_examples=25, deadline=None)
@given(layers=st.lists(st.sampled_from([0.0, 20.0, 500.0, 5_000.0, 30_000.0]), min_size=1, max_size=8),
       seed=st.integers(0, 10**6), jitter=st.sampled_from([0.001, 0.02, 0.1]))
def test_invariants_of_any_profile(layers: list[float], seed: int, jitter: float) -> None:
    """Whatever the board: a resolved row is above 0 with its interval, the rows' sum is what the
    sum check adds, and the layers' times tile the rows."""
    board = SimBoard(tuple(layers), seed=seed, jitter=jitter, preempt=0.02)
    p = estimate(board, rounds=3, slices=2, per_slice=2)
    assert all(row.ns > 0 and row.interval_ns is not None and row.interval_ns[0] > 0
               for row in p.groups if row.resolved)
    assert p.sum_check == pytest.approx((p.overhead_ns + p.sum_ns - p.whole_ns) / p.whole_ns)
    assert p.sum_ns == pytest.approx(sum(layer.ns for layer in p.layers), rel=1e-9, abs=1e-6)


# --- the adaptive stop rule ------------------------------------------------------------------------

def test_next_session_arithmetic() -> None:
    plan = ProfilePlan(target_se=0.02, max_time_s=60)
    assert next_session(plan, 0.019, 4, 10, 1.0, 1.0) == ("stable", 0)
    # SE falls as 1/sqrt(rounds): 4 rounds at 4 % need 16 in all, 12 more, x 1.25 = 15.
    assert next_session(plan, 0.04, 4, 10, 1.0, 1.0) == (None, 15)
    assert next_session(plan, 0.04, 4, 50, 1.0, 1.0) == (None, 9)  # what fits in the 60 s: 9 rounds
    assert next_session(plan, 0.04, 4, 58, 1.0, 0.5) == ("max_time", 0)  # 1 round fits, < MIN_ROUNDS
    assert next_session(plan, 0.0201, 40, 10, 1.0, 1.0) == (None, MIN_ROUNDS)  # close: the least worth a start
    assert next_session(plan, float("nan"), 4, 10, 1.0, 1.0) == (None, 4)  # no SE yet: as many again


class SimDriver:
    """Plays the board for run_sessions: each agent session emits what the agent's profile mode
    emits (hello, models, plan, its rounds, summary), its rounds simulated on ``board`` one after the
    other on the simulated clock that run_sessions reads; ``startup_s`` per session (process,
    models, calibration and warm-up)."""

    def __init__(self, board: SimBoard, startup_s: float = 0.5) -> None:
        self.board, self.startup_s, self.now, self.sessions = board, startup_s, 0.0, [0]

    def clock(self) -> float:
        return self.now

    def profile(self, job: ProfileJob, emit: Emit, cancel: threading.Event) -> None:
        session = job.session
        assert session is not None and session.max_time_s > 0
        self.sessions.append(session.rounds)
        started = self.now
        self.now += self.startup_s
        emit({"type": "hello", "runtime": {"name": "sim"}})
        emit({"type": "models", "models": [{"path": "m", "delegated": []}]})
        emit({"type": "plan", "slices": SLICES, "rounds": session.rounds})
        done, longest = 0, 0.0
        while done < session.rounds and not (done and self.now - started + longest > session.max_time_s):
            run = simulate(self.board, 1, slices=SLICES, start_s=self.now)
            longest = max(longest, run.seconds - self.now)
            self.now = run.seconds
            emit({"type": "round", "round": done, "ns": run.rounds_ns[0], "cpu_ns": run.rounds_ns[0],
                  "forward": [(done + s) % 2 == 0 for s in range(SLICES)]})
            done += 1
        emit({"type": "summary", "rounds": done})


def adaptive(board: SimBoard, plan: ProfilePlan) -> tuple[LayerProfile, list[dict[str, Any]], SimDriver]:
    driver = SimDriver(board)
    ops = tuple({"index": i, "type": "ADD", "flops": 2} for i in range(len(board.layers_ns)))
    job = ProfileJob("sim", Path("m.tflite"), "0" * 64, plan, (), ops=ops)
    lines: list[dict[str, Any]] = []
    run_sessions(driver, job, lines.append, threading.Event(), clock=driver.clock)
    header = {"target": "sim", "model": "m", "plan": plan.as_dict(), "ops": list(ops)}
    return profile_from_record(header, lines), lines, driver


def test_adaptive_rounds_stop_once_the_se_is_under_target() -> None:
    p, lines, driver = adaptive(SimBoard(LAYERS, seed=5, jitter=0.03, **EPISODES),
                                ProfilePlan(target_se=0.005, max_time_s=60))
    assert p.stop is not None and p.stop.by == "stable"
    assert p.sum_check_se < 0.005 and abs(p.sum_check) <= 3 * p.sum_check_se
    sessions = [m for m in lines if m["type"] == "session"]
    assert len(sessions) >= 2 and p.stop.sessions == len(sessions)
    assert sessions[1]["sum_check_se"] >= 0.005  # the first session alone was not enough
    assert p.stop.rounds == len(p.rounds_ns) == sum(driver.sessions)
    assert p.stop.wall_s is not None and p.stop.wall_s <= 60
    assert lines[-1]["type"] == "stop" and lines[-1]["sum_check_se"] == p.sum_check_se


def test_adaptive_rounds_stop_at_the_time_bound_and_say_so() -> None:
    p, lines, driver = adaptive(SimBoard(LAYERS, seed=5, jitter=0.2, preempt=0.05, **EPISODES),
                                ProfilePlan(target_se=0.001, max_time_s=8))
    assert p.stop is not None and p.stop.by == "max_time" and p.sum_check_se >= 0.001
    assert driver.now <= 8  # the bound holds on the board's clock, start-ups included
    assert p.stop.wall_s is not None and p.stop.wall_s <= 8 and p.stop.max_time_s == 8
    said = "\n".join(profile_lines(p))
    assert "the 8 s time bound came first" in said and "raise --max-time" in said
    assert f"± {100 * p.sum_check_se:.1f} %" in said
