"""The estimator of a prefix profile: per-row times, their intervals and the sum check, from turns.

A *turn* is one pass of the agent over every timed model (prefix 0..N, then the whole model),
each given a few Invokes back to back; ``values[t, k]`` is model k's median Invoke (ns) in turn t
and ``forward[t]`` whether turn t ran the models in forward order (reverse otherwise). A *span*
(a, b) is the time from prefix a to prefix b: one op is (i, i + 1), a delegate partition of ops
first..last is (first, last + 1).

What the turns leave uncancelled, and what this estimator does about it:

- **The speed of the turn.** Prefixes k and k + 1 are timed right beside each other, so their
  difference in one turn is the layer's time *at the speed the board had in that turn*. A board
  whose speed changes between turns (a loaded sibling core, frequency or thermal steps: on the
  2-core development machine the same model takes 0.63 or 1.05 ms, in episodes of a few turns)
  makes each layer's median a median over a mixture of speeds, and medians of mixtures do not add:
  the sum check came out -20 % on MobileNet. So every turn is first divided by its own speed,
  the median over models 1..N+1 of each model's time in the turn over its median in all turns
  (model 0, the empty prefix, is runtime overhead, not compute). The figures are then in the
  board's median speed, the scale of the whole model's median.
- **A drift within the turn.** In a forward turn prefix k + 1 is timed after prefix k, in a
  reverse turn before it: a linear drift adds +e to the difference in one order and -e in the
  other. The median over turns of both orders mixes +e and -e, which leaves e whenever the two
  orders are not equally many, or the noise is smaller than e. So each figure is the *mean of two
  medians*, one over the forward turns and one over the reverse turns (ABBA at the level of the
  estimate): the +e and -e cancel exactly, and each median still shrugs off outlying turns.

Spans are differences of medians-of-speed-normalised-turns *per turn*, never differences of
medians, so "overhead + rows = whole model" (the sum check) stays a real check. Its standard
error and every span's 95 % interval come from one bootstrap over turns (resampled within each
order, seeded: the figures are reproducible from the stored samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP = 200  # resamples: the SE's own relative error is about 5 %, intervals to a few %
CHUNK = 16  # resamples computed at once (memory: CHUNK x turns x spans floats)


@dataclass(frozen=True)
class SpanStats:
    """Every span's time (ns) and 95 % interval, the overhead, the whole model and the sum check
    over ``rows`` (indices into the spans that tile the model). Intervals are None, and the SE is
    NaN, with fewer than two turns."""

    ns: tuple[float, ...]
    intervals: tuple[tuple[float, float] | None, ...]
    overhead_ns: float
    whole_ns: float
    sum_ns: float
    sum_check: float
    sum_check_se: float
    turns: int


def turn_values(rounds_ns: Sequence[Sequence[Sequence[int]]], slices: int) -> np.ndarray:
    """Per turn, each model's median Invoke: ``rounds_ns[r][k]`` holds model k's samples of round r,
    ``slices`` equal turns after one another. Shape (rounds x slices, models)."""
    turns = []
    for r in rounds_ns:
        for t in range(slices):
            turns.append([float(np.median(s[t * (len(s) // slices):(t + 1) * (len(s) // slices)])) for s in r])
    return np.asarray(turns, dtype=float)


def normalise(values: np.ndarray) -> np.ndarray:
    """Each turn divided by its speed: the median over models 1.. of the model's time in the turn
    over the model's median in all turns."""
    if values.shape[1] < 2 or len(values) < 2:
        return values
    ref = np.median(values[:, 1:], axis=0)
    ref[ref <= 0] = 1.0
    speed = np.median(values[:, 1:] / ref, axis=1)
    speed[speed <= 0] = 1.0
    return values / speed[:, None]


def span_stats(values: np.ndarray, forward: Sequence[bool], spans: Sequence[tuple[int, int]],
               rows: Sequence[int]) -> SpanStats:
    """The estimator (module docstring) over turns ``values`` (turns x models) in the orders
    ``forward``: each span's time, the overhead (model 0), the whole model (the last) and the sum
    check of ``rows`` (span indices tiling every op once), with bootstrap SE and intervals."""
    v = normalise(np.asarray(values, dtype=float))
    fwd = np.asarray(forward, dtype=bool)
    starts = np.array([a for a, _ in spans], dtype=int)
    ends = np.array([b for _, b in spans], dtype=int)
    # One matrix of per-turn figures: the spans, then the overhead, then the whole model.
    per_turn = np.concatenate([v[:, ends] - v[:, starts], v[:, :1], v[:, -1:]], axis=1)
    groups = [np.flatnonzero(fwd), np.flatnonzero(~fwd)]
    groups = [g for g in groups if len(g)]
    point = _estimate(per_turn, groups)
    row_index = np.asarray(rows, dtype=int)
    check = _checks(point[None, :], row_index)[0]
    n_spans = len(spans)
    se = float("nan")
    intervals: list[tuple[float, float] | None] = [None] * n_spans
    if len(v) >= 2:
        boot = _bootstrap(per_turn, groups)
        se = float(np.std(_checks(boot, row_index)))
        lo, hi = np.percentile(boot[:, :n_spans], [2.5, 97.5], axis=0)
        intervals = [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
    total = float(point[row_index].sum())
    return SpanStats(tuple(float(x) for x in point[:n_spans]), tuple(intervals), float(point[-2]),
                     float(point[-1]), total, float(check), se, len(v))


def _estimate(per_turn: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """The mean over orders of each column's median over that order's turns."""
    return np.mean([np.median(per_turn[g], axis=0) for g in groups], axis=0)


def _checks(estimates: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The sum check of each row of ``estimates`` (spans..., overhead, whole)."""
    whole = estimates[:, -1]
    total = estimates[:, -2] + estimates[:, rows].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole != 0, (total - whole) / whole, np.nan)


def _bootstrap(per_turn: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """BOOTSTRAP estimates from turns resampled with replacement within each order (seeded)."""
    rng = np.random.default_rng(0)
    out = np.empty((BOOTSTRAP, per_turn.shape[1]))
    for start in range(0, BOOTSTRAP, CHUNK):
        n = min(CHUNK, BOOTSTRAP - start)
        medians = [np.median(per_turn[rng.choice(g, size=(n, len(g)))], axis=1) for g in groups]
        out[start:start + n] = np.mean(medians, axis=0)
    return out
