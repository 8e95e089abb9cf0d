"""LoadGen's binomial early-stopping rule (mlcommons/inference, loadgen/early_stopping.cc), and its
application frame by frame to a --find-max trial (``Judge``).

A trial claims "frames are on time at least ``percentile`` of the time" at ``confidence``; the
rule says how many frames that claim needs given the misses seen so far, so a trial stops as soon
as the answer is clear either way: at a confidence of 0.99, 64 frames for a p90 claim, 662 for p99.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harness.stats import betainc

if TYPE_CHECKING:
    from harness.results.stream import Trial


def overlatency_odds(passing: int, misses: int, percentile: float) -> float:
    """P(at most ``misses`` of ``passing + misses`` frames miss their deadline) when each frame is
    on time with probability ``percentile`` (a fraction): the binomial CDF, which is the
    regularized incomplete beta I_p(h, t + 1) (LoadGen's ``odds(h, t, p, d)`` with d = 0)."""
    if passing < 1:
        return 1.0
    return betainc(passing, misses + 1.0, percentile)


def min_passing(misses: int, percentile: float, confidence: float) -> int:
    """LoadGen's ``MinPassingQueriesFinder``: the fewest frames on time, given ``misses`` frames
    late, for which ``overlatency_odds`` is below 1 - ``confidence``, i.e. the claim "frames are on
    time at least ``percentile`` of the time" holds at that confidence. With no miss it is
    ceil(ln(1 - c) / ln(p)) (44 for p = 0.9, c = 0.99)."""
    if not (0.0 < percentile < 1.0 and 0.0 < confidence < 1.0 and misses >= 0):
        raise ValueError(f"percentile {percentile} and confidence {confidence} must be inside (0, 1)")
    low, high = 1, max(2, math.ceil(math.log(1 - confidence) / math.log(percentile)))
    while overlatency_odds(high, misses, percentile) >= 1 - confidence:
        low, high = high + 1, 2 * high
    while low < high:  # the smallest h with odds < 1 - c; odds fall as h grows
        mid = (low + high) // 2
        if overlatency_odds(mid, misses, percentile) < 1 - confidence:
            high = mid
        else:
            low = mid + 1
    return low


def frames_needed(misses: int, percentile: float, confidence: float) -> int:
    """How many frames a claim at ``percentile`` needs when ``misses`` of them missed: passing +
    misses, and never fewer than LoadGen asks of any early-stopping estimate, ``min_passing(1) +
    1`` (64 frames for a p90 claim, 662 for p99, at a confidence of 0.99)."""
    t = max(misses, 1)
    return min_passing(t, percentile, confidence) + t


class Judge:
    """LoadGen's early-stopping rule applied frame by frame, as a trial's frames arrive, to the
    claim "frames are on time at least ``percentile`` of the time" at ``confidence``.

    ``add(missed)`` for each frame handled, in order. The verdict comes at the first frame where
    the rule decides and never changes after (frames that arrive after it are extra data): "pass"
    once the frames reach ``frames_needed`` for the misses so far; "fail" once that need
    exceeds ``max_frames``, so that not even a trial whose every later frame were on time could
    pass (more misses only raise the need). It depends on the misses only, so it is computed
    once per count of misses."""

    def __init__(self, max_frames: int, percentile: float, confidence: float) -> None:
        self.max_frames = max_frames
        self.percentile = percentile
        self.confidence = confidence
        self.frames = 0
        self.misses = 0
        self.verdict: str | None = None
        self.at: int | None = None  # frames handled when the verdict came
        self.need = 0
        self._needs: dict[int, int] = {}

    def add(self, missed: bool) -> str | None:
        self.frames += 1
        self.misses += missed
        if self.verdict is None:
            if self.misses not in self._needs:
                self._needs[self.misses] = frames_needed(self.misses, self.percentile, self.confidence)
            self.need = self._needs[self.misses]
            if self.frames >= self.need:
                self.verdict, self.at = "pass", self.frames
            elif self.need > self.max_frames:
                self.verdict, self.at = "fail", self.frames
        return self.verdict


def judge(trial: Trial, percentile: float, confidence: float) -> Judge:
    """The verdict of a stored --find-max trial, recomputed from its frames (a frame misses when
    dropped or late by its times) in the order they were scheduled; ``max_frames`` from its
    ``trial`` line."""
    deadline = trial.deadline_ns or 0
    j = Judge(int((trial.limit or {}).get("frames") or len(trial.frames)), percentile, confidence)
    for s, e in zip(trial.frames.scheduled_ns, trial.frames.end_ns, strict=True):
        j.add(e is None or e - s > deadline)
    return j
