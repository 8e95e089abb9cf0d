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
