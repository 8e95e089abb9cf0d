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


# Student's t, 97.5th percentile (two-sided 95 %), for 1..30 degrees of freedom (scipy.stats.t.ppf,
# 6 decimals); above 30 the Cornish-Fisher expansion in _t975 is within 1e-7 of it.
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
         2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
         2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
         2.048407, 2.045230, 2.042272)
_Z975 = 1.959963984540054  # the normal distribution's 97.5th percentile


def t975(df: int) -> float:
    """Student's t 97.5th percentile for ``df`` >= 1 degrees of freedom (the factor of a 95 %
    two-sided interval): a table to 30, then Abramowitz & Stegun 26.7.5 (four terms)."""
    if df < 1:
        raise ValueError(f"a t quantile needs at least 1 degree of freedom, not {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96,
         (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
         (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(gi / df ** (i + 1) for i, gi in enumerate(g))


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95 % Student-t confidence interval of the mean of ``values``: mean ± t975(n-1)·s/√n.

    harness gives it the per-process medians of a benchmark (one value per agent process, or per
    fresh interpreter on a microcontroller), never pooled samples: what changes between processes
    (memory layout, where the runtime placed the model, the core it ran on) moves every sample of
    a process together, so pooled samples are not independent and their interval would be far too
    narrow. None for fewer than 2 values: one process says nothing about the next.
    """
    if len(values) < 2:
        return None
    a = _array(values)
    centre = float(np.mean(a))
    half = t975(int(a.size) - 1) * float(np.std(a, ddof=1)) / math.sqrt(a.size)
    return centre - half, centre + half


def mean_ratio_interval(numerator: Sequence[float], denominator: Sequence[float],
                        ratio: float | None = None) -> tuple[float, float] | None:
    """The 95 % interval of the ratio mean(numerator) / mean(denominator) of two independent sets
    of units (a speed-up: the per-process or per-block medians of a base and of its variant).

    Method (the delta method on the log of the ratio): the log of each mean has the variance
    s² / (n · mean²), the log ratio the sum of both, and the interval is the log ratio
    ± t(0.975, df) times its square root, taken back with exp, so it is never below 0 and as
    asymmetric as a ratio is. ``df`` is Welch-Satterthwaite's for those two variances, rounded
    down (t is then a little larger: the interval errs on the wide side). The interval is
    centred on ``ratio`` when given (the figure it is printed with, such as a ratio of pooled
    medians), else on the ratio of the means. None unless each side has 2 units or more and a
    positive mean.
    """
    if len(numerator) < 2 or len(denominator) < 2:
        return None
    a, b = _array(numerator), _array(denominator)
    ma, mb = float(np.mean(a)), float(np.mean(b))
    if ma <= 0 or mb <= 0:
        return None
    va = float(np.var(a, ddof=1)) / (a.size * ma * ma)
    vb = float(np.var(b, ddof=1)) / (b.size * mb * mb)
    centre = ratio if ratio is not None else ma / mb
    if va + vb == 0:
        return centre, centre
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    # (1e-9: a df that is a whole number but for rounding, such as 2 for two equal sides, stays it)
    half = t975(max(1, int(df + 1e-9))) * math.sqrt(va + vb)
    return centre * math.exp(-half), centre * math.exp(half)


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
