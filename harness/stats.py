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

    Beside ``ratio_interval`` below (a bootstrap of the ratio of the units' medians, for
    `harness compare`): a bootstrap needs about 5 units a side, while a speed-up from
    ``--processes 2`` or 3 has only that many process medians, which the t quantile accounts for.
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


# Comparing two sets of units (the block medians or the process medians of two benchmarks): the
# tests and the interval of their ratio. Pure, as above; harness.results.compare picks the units.
# scipy is not a dependency of harness (tens of MB for three functions a host needs); tests check
# these against it (scipy comes with scikit-learn in the test extra).

ALPHA = 0.05  # two-sided significance level of every comparison
EXACT_MAX_PAIRS = 2500  # Mann-Whitney's exact p up to len(a) * len(b) pairs (50 x 50: ~30 ms)
BOOTSTRAP_RESAMPLES = 2000  # the ratio interval's resamples: its ends move < 0.5 % of its width


@dataclass(frozen=True)
class TestResult:
    """One two-sided test of "a and b come from the same distribution"."""

    test: str  # "mann-whitney-u" | "welch-t"
    statistic: float  # U of ``a`` (pairs with a > b, ties half) or Welch's t (b - a)
    p_value: float
    method: str  # "exact" | "asymptotic" (Mann-Whitney), "t" (Welch)
    df: float | None = None  # Welch's degrees of freedom


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _u_counts(m: int, n: int) -> list[int]:
    """How many of the C(m + n, m) orderings of m and n distinct values give each U = 0..m*n: the
    coefficients of the Gaussian binomial [m + n, m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i),
    in exact integers."""
    coef = [1]
    for i in range(1, m + 1):
        grown = coef + [0] * (n + i)
        for j, c in enumerate(coef):  # times (1 - q^(n+i))
            grown[j + n + i] -= c
        for j in range(i, len(grown)):  # over (1 - q^i): an exact division, a running sum
            grown[j] += grown[j - i]
        coef = grown[:i * n + 1]
    return coef


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """The two-sided Mann-Whitney U test, as scipy.stats.mannwhitneyu computes it.

    U counts the pairs (x of a, y of b) with x > y, a tie counting one half. Without ties and at
    most EXACT_MAX_PAIRS pairs, p is exact: 2 P(U >= max(U, mn - U)) over all orderings, capped
    at 1. Otherwise the normal approximation with the tie correction and a continuity
    correction of 0.5. Needs at least one value on each side.
    """
    x, y = _array(a), _array(b)
    m, n = int(x.size), int(y.size)
    ranks = _ranks(np.concatenate([x, y]))
    u = float(ranks[:m].sum() - m * (m + 1) / 2)
    big = max(u, m * n - u)
    _, ties = np.unique(np.concatenate([x, y]), return_counts=True)
    if ties.max() == 1 and m * n <= EXACT_MAX_PAIRS:
        counts = _u_counts(min(m, n), max(m, n))
        tail = sum(counts[math.ceil(big):])
        return TestResult("mann-whitney-u", u, min(1.0, 2 * tail / math.comb(m + n, m)), "exact")
    total = m + n
    tie_term = float((ties.astype(np.float64) ** 3 - ties).sum()) / (total * (total - 1))
    sd = math.sqrt(m * n / 12 * ((total + 1) - tie_term))
    if sd == 0:  # every value equal
        return TestResult("mann-whitney-u", u, 1.0, "asymptotic")
    z = (big - m * n / 2 - 0.5) / sd
    return TestResult("mann-whitney-u", u, min(1.0, 2 * normal_sf(z)), "asymptotic")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1)
    uniq, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=uniq.size)
    return (sums / np.bincount(inverse, minlength=uniq.size))[inverse]


def mann_whitney_min_p(m: int, n: int) -> float:
    """The smallest two-sided p the exact test can give m and n values (complete separation):
    2 / C(m + n, m). At or above ALPHA the test can never find a difference."""
    return min(1.0, 2 / math.comb(m + n, m))


def welch_t(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Welch's two-sided t test (unequal variances), as scipy.stats.ttest_ind(equal_var=False):
    t = (mean b - mean a) / sqrt(s_a²/n_a + s_b²/n_b), Welch-Satterthwaite degrees of freedom.
    Needs at least 2 values on each side. Two sides without any spread: p = 1 when their means
    are equal, else 0."""
    x, y = _array(a), _array(b)
    if x.size < 2 or y.size < 2:
        raise ValueError("Welch's t test needs at least 2 values on each side")
    va, vb = float(np.var(x, ddof=1)) / x.size, float(np.var(y, ddof=1)) / y.size
    diff = float(np.mean(y) - np.mean(x))
    if va + vb == 0:
        return TestResult("welch-t", math.copysign(math.inf, diff) if diff else 0.0,
                          1.0 if diff == 0 else 0.0, "t", None)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    return TestResult("welch-t", t, min(1.0, 2 * student_t_sf(abs(t), df)), "t", df)


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` > 0 degrees of freedom (any real ``df``, as Welch
    needs), from the regularized incomplete beta function: for t >= 0 it is
    I_{df/(df+t²)}(df/2, 1/2) / 2."""
    if df <= 0:
        raise ValueError(f"Student's t needs positive degrees of freedom, not {df}")
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1: the continued
    fraction of Numerical Recipes (6.4), evaluated by the modified Lentz method, on the side of
    x where it converges fast."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def ratio_interval(baseline: Sequence[float], candidate: Sequence[float], *, level: float = 0.95,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The ``level`` interval of median(candidate) / median(baseline): a percentile bootstrap over
    the units, each side resampled on its own (the two sides are independent measurements).

    Why a bootstrap: the ratio is of medians, for which no closed form (delta method, Fieller)
    holds without assuming a distribution; the bootstrap needs none, and its interval is never
    below 0 nor symmetric where the ratio is not. With as few as 5 units a side it covers the
    true ratio about 96 % of the time for normal, lognormal and skewed units (tests/test_compare_stats.py
    simulates it): the median's discreteness makes it slightly conservative. The seed is fixed so
    that a comparison prints the same interval every time it is recomputed.
    """
    x, y = _array(baseline), _array(candidate)
    if np.median(x) <= 0:
        raise ValueError("a ratio needs a baseline of positive median")
    rng = np.random.default_rng(seed)
    bx = np.median(x[rng.integers(0, x.size, (resamples, x.size))], axis=1)
    by = np.median(y[rng.integers(0, y.size, (resamples, y.size))], axis=1)
    tail = 100 * (1 - level) / 2
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of zeros: an infinite ratio
        lo, hi = np.percentile(by / bx, [tail, 100 - tail])
    return float(lo), float(hi)

