"""Statistics over raw samples: pure functions, no I/O, no state.

Percentiles use the 0-100 convention everywhere, with linear interpolation between closest ranks
(numpy's default "linear" method, Hyndman & Fan type 7). The standard deviation is the sample
standard deviation (n - 1). Inputs are sequences of numbers (nanoseconds in harness); empty input
is an error, not a NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _array(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError("statistics need a non-empty sequence of numbers")
    return a


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, 0 <= q <= 100, linear interpolation between closest ranks."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} is outside 0..100")
    return float(np.percentile(_array(values), q))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def mean(values: Sequence[float]) -> float:
    return float(np.mean(_array(values)))


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0.0 for a single value."""
    a = _array(values)
    return float(np.std(a, ddof=1)) if a.size > 1 else 0.0


@dataclass(frozen=True)
class Summary:
    """The usual figures of one sample set, in the unit of the samples."""

    n: int
    median: float
    mean: float
    p90: float
    p99: float
    stdev: float
    min: float
    max: float

    @property
    def rel_stdev(self) -> float:
        """stdev / median; inf when the median is 0."""
        return self.stdev / self.median if self.median else math.inf

    def to_json(self, unit: str = "ns") -> dict[str, float | int]:
        """Integer fields named with ``unit``, as in `harness run --json`."""
        out: dict[str, float | int] = {"n": self.n}
        for name in ("median", "mean", "p90", "p99", "stdev", "min", "max"):
            out[f"{name}_{unit}"] = round(getattr(self, name))
        return out


def describe(values: Sequence[float]) -> Summary:
    """Every figure of ``Summary`` for one sample set (the unit of the samples)."""
    a = _array(values)
    p50, p90, p99 = np.percentile(a, [50.0, 90.0, 99.0])
    return Summary(
        n=int(a.size), median=float(p50), mean=float(np.mean(a)), p90=float(p90), p99=float(p99),
        stdev=float(np.std(a, ddof=1)) if a.size > 1 else 0.0, min=float(a.min()), max=float(a.max()),
    )


def share(with_value: float, without_value: float) -> float:
    """Fraction of the with-Invoke loop that inference takes: (with - without) / with."""
    if with_value <= 0:
        raise ValueError("the with-Invoke loop time must be positive")
    return (with_value - without_value) / with_value


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median (not scaled): a spread that rare outliers cannot move."""
    a = _array(values)
    return float(np.median(np.abs(a - np.median(a))))


# Student's t, 97.5th percentile, for 1..10 degrees of freedom (to 4 decimals); above 10 the
# Cornish-Fisher expansion below is within 4e-6 of it (and within 2e-8 from 30 on).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281)
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """The 97.5th percentile of Student's t with ``df`` >= 1 degrees of freedom (two-sided 95 %)."""
    if df < 1:
        raise ValueError("Student's t needs at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    terms = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96,
             (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
             (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(g / df ** (k + 1) for k, g in enumerate(terms))


def block_share_halfwidth(with_medians: Sequence[float], without_medians: Sequence[float]) -> float | None:
    """Half-width of the 95 % interval of the inference share, from the ABBA blocks.

    Method: block b has a with-Invoke half and a without-Invoke half, run back to back; their
    medians W_b and O_b give the block's own share s_b = (W_b - O_b) / W_b. What changes between
    blocks (drift, heat, other programs) moves s_b, so the spread of the n per-block shares
    measures how far a share from n blocks can be off: the half-width is
    t(0.975, n - 1) * sd(s_b) / sqrt(n), Student's t on the mean of the per-block shares.
    Pairing within a block cancels what both halves share. None for fewer than 2 blocks: one
    block says nothing about what changes between blocks.
    """
    if len(with_medians) != len(without_medians):
        raise ValueError("each block needs a with-Invoke and a without-Invoke median")
    shares = [share(w, o) for w, o in zip(with_medians, without_medians, strict=True)]
    if len(shares) < 2:
        return None
    return t975(len(shares) - 1) * stdev(shares) / math.sqrt(len(shares))


def amdahl(share_: float, factor: float) -> float:
    """Amdahl's law: how many times faster the loop gets when the part that takes ``share_`` of it
    gets ``factor`` times faster (``math.inf``: the part vanishes). share_ < 1."""
    if factor <= 0:
        raise ValueError("a speed-up factor must be positive")
    rest = 1.0 - share_
    if rest <= 0 and math.isinf(factor):
        return math.inf
    return 1.0 / (rest + share_ / factor)
