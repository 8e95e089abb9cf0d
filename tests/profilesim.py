"""A simulated board for the per-layer estimator: the agent's profile schedule, known layer times.

``simulate`` times prefixes 0..N and the whole model the way the agent's profile mode does
(rounds of ``slices`` turns, ``per_slice`` Invokes per model per turn, turns alternating forward
and reverse order, one after the other on one clock) on a board whose Invoke of prefix k takes
``overhead + sum(layers[:k])`` times the board's speed at that moment, with per-Invoke jitter,
rare preemptions, a linear drift (or a sawtooth of them) and episodes of a slower machine (a loaded sibling core). It
returns what the agent would send (the ``round`` messages' ``ns`` and ``forward``), so the tests
feed the real estimator; a fake only of the board, for pure logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SimBoard:
    layers_ns: tuple[float, ...]
    overhead_ns: float = 500.0
    jitter: float = 0.01  # relative, lognormal sigma per Invoke
    preempt: float = 0.0  # probability that an Invoke is preempted ...
    preempt_ns: float = 200_000.0  # ... and loses this long
    drift_per_s: float = 0.0  # speed factor 1 + drift_per_s * t (t: seconds since the start ...
    drift_period_s: float = 0.0  # ... modulo this period, a sawtooth; 0: no period, a ramp)
    slow: float = 1.0  # factor of the slow episodes (1: none)
    slow_share: float = 0.0  # fraction of time in slow episodes ...
    episode_s: float = 0.05  # ... of this mean length (exponential)
    seed: int = 0

    @property
    def prefix_ns(self) -> list[float]:
        return [self.overhead_ns + float(sum(self.layers_ns[:k])) for k in range(len(self.layers_ns) + 1)]

    @property
    def whole_ns(self) -> float:
        return self.prefix_ns[-1]


@dataclass
class SimRun:
    rounds_ns: list[list[list[int]]] = field(default_factory=list)
    forward: list[list[bool]] = field(default_factory=list)
    seconds: float = 0.0  # simulated board time


def simulate(board: SimBoard, rounds: int, slices: int = 5, per_slice: int = 3, gap_ns: float = 2_000.0,
             start_s: float = 0.0) -> SimRun:
    """``rounds`` rounds of the agent's schedule on ``board`` (seeded: the same board gives the same samples)."""
    rng = np.random.default_rng(board.seed + int(start_s * 1000))
    times = [*board.prefix_ns, board.whole_ns]
    models = range(len(times))
    run = SimRun(seconds=start_s)
    slow_until, next_switch = -1.0, start_s + _gap(rng, board)
    for r in range(rounds):
        ns: list[list[int]] = [[] for _ in models]
        orders = [(r + s) % 2 == 0 for s in range(slices)]
        for s in range(slices):
            for k in (models if orders[s] else reversed(models)):
                for _ in range(per_slice):
                    t = run.seconds
                    if board.slow_share and t >= next_switch:
                        slow_until = t + rng.exponential(board.episode_s)
                        next_switch = slow_until + _gap(rng, board)
                    ramp = t % board.drift_period_s if board.drift_period_s else t
                    speed = (1 + board.drift_per_s * ramp) * (board.slow if t < slow_until else 1.0)
                    d = times[k] * speed * rng.lognormal(0.0, board.jitter)
                    if board.preempt and rng.random() < board.preempt:
                        d += board.preempt_ns
                    ns[k].append(round(d))
                    run.seconds += (d + gap_ns) / 1e9
        run.rounds_ns.append(ns)
        run.forward.append(orders)
    return run


def _gap(rng: np.random.Generator, board: SimBoard) -> float:
    """Time until the next slow episode, so that slow_share of the time is slow on average."""
    if not board.slow_share:
        return float("inf")
    return float(rng.exponential(board.episode_s * (1 - board.slow_share) / board.slow_share))


def naive_layers(rounds_ns: list[list[list[int]]], slices: int) -> tuple[list[float], float]:
    """The estimator before this one: per layer the median over all turns of the raw per-turn
    difference of neighbouring prefixes, and the sum check of those medians (the counterfactual
    that the tests compare with)."""
    from harness.results.layer_stats import turn_values

    u = turn_values(rounds_ns, slices)
    layers = np.median(np.diff(u[:, :-1], axis=1), axis=0)
    whole = float(np.median(u[:, -1]))
    return [float(x) for x in layers], (float(np.median(u[:, 0])) + float(layers.sum()) - whole) / whole
