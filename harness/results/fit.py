"""Latency as a sum over ops: a per-op-type throughput and per-op costs fitted to what a board ran.

The model of one board, thread count and XNNPACK setting (a ``Group``)::

    Invoke ns = invoke_ns + sum over ops of (flops / rate[class, precision] + per_op_ns)

``class`` is the op's kind of kernel (``op_class``: conv, depthwise, fully_connected, pool,
elementwise, convert, shape, other), ``precision`` what its kernel computes in: the op's own
precision from harness.models.analysis (float32, int8, dynamic_int8, ...), except that a float16
or weight-only layer whose weights a DEQUANTIZE expands once runs the float32 kernel and takes
the float32 rate (harness.results.readings.kernel_precision). A mixed model's int8 layers and
float32 layers each take their own rate. ``invoke_ns`` is what an Invoke costs with no op at
all (a profile's empty prefix measures it), ``per_op_ns`` what every op costs besides its FLOPs
(dispatch, its tensors' bookkeeping): one figure for all ops, as the issue asks. A per-class
overhead was tried and predicts worse: with a handful of models it is collinear with the rates
and soaks up their time (on local it put 11.6 us on every conv and 30 us on a RESHAPE, and the
small digits model came out 2.4x too slow).

The unknowns (ns per FLOP for each (class, precision) measured, the per-op ns, and
``invoke_ns``) are all non-negative and fitted by non-negative least squares (``nnls``) on

- whole-model times: one equation per model (a benchmark run's median Invoke), and
- per-layer profiles: one equation per op (its measured time), and one for the empty prefix,

each divided by the model's whole time, so that the residuals are relative: models differ 100x in
time, and a microsecond model weighs as much as a millisecond one. A profile's layers are first
scaled so that they add up to the profile's whole-model time (the sum check's gap spread over the
layers in proportion): differencing prefixes biases the sum, not the shares between layers.

A prediction of an op whose (class, precision) the board never ran uses a fallback rate and says
so (``Estimate.extrapolated``): the class's float32 rate, else its closest measured precision,
else the board's median rate over every measured class. An op type the board never ran (a
SOFTMAX on a board that ran only ADDs of its class) is named too, though its class's rate is
measured. An op whose FLOPs are unknown costs its per-op time only, and is named.

Pure functions over plain data; the solver is scipy's ``nnls`` (Lawson and Hanson's active set).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from harness.models.flops import KIND_SHAPE, KIND_UNKNOWN

CLASS_OF_TYPE = {
    "CONV_2D": "conv", "CONV_3D": "conv", "TRANSPOSE_CONV": "conv", "CONV_3D_TRANSPOSE": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "fully_connected", "BATCH_MATMUL": "fully_connected",
    "AVERAGE_POOL_2D": "pool", "MAX_POOL_2D": "pool", "L2_POOL_2D": "pool", "MEAN": "pool", "SUM": "pool",
    "REDUCE_MAX": "pool", "REDUCE_MIN": "pool", "REDUCE_PROD": "pool", "REDUCE_ANY": "pool",
    "REDUCE_ALL": "pool", "ARG_MAX": "pool", "ARG_MIN": "pool",
    "QUANTIZE": "convert", "DEQUANTIZE": "convert", "CAST": "convert",
}
"""Op types by kernel class; every other counted type is ``elementwise`` (arithmetic,
activations, softmax: one pass over the elements), data movement ``shape``, unknown ``other``."""

CLASSES = ("conv", "depthwise", "fully_connected", "pool", "elementwise", "convert", "shape", "other")


def op_class(op_type: str, kind: str) -> str:
    """The kernel class of an op of ``op_type`` and FLOP ``kind`` (harness.models.flops)."""
    if op_type in CLASS_OF_TYPE:
        return CLASS_OF_TYPE[op_type]
    if kind == KIND_SHAPE:
        return "shape"
    if kind == KIND_UNKNOWN:
        return "other"
    return "elementwise"


@dataclass(frozen=True)
class Op:
    type: str
    cls: str
    precision: str
    flops: int | None  # None: unknown (costs its per-op time only)


@dataclass(frozen=True)
class Model:
    """What the fit needs of one model file: its ops in order and its finer scheme."""

    name: str
    sha256: str
    scheme: str  # ModelAnalysis.scheme_detail
    ops: tuple[Op, ...]

    @property
    def flops(self) -> int:
        return sum(op.flops or 0 for op in self.ops)


@dataclass(frozen=True)
class Group:
    """Where times are comparable: one board (as deployed), thread count and XNNPACK setting."""

    target: str
    threads: int
    xnnpack: bool

    def label(self) -> str:
        return f"{self.target} ({self.threads} thread{'s' if self.threads != 1 else ''}, " \
               f"XNNPACK {'on' if self.xnnpack else 'off'})"


@dataclass(frozen=True)
class Whole:
    """A model's measured median Invoke (ns) in a group: one benchmark, or the median of several."""

    group: Group
    model: Model
    ns: float


@dataclass(frozen=True)
class Layers:
    """A per-layer profile in a group: ``op_ns[i]`` is op i's time (NaN where not resolved),
    ``overhead_ns`` the empty prefix's Invoke and ``whole_ns`` the whole model's, all ns."""

    group: Group
    model: Model
    op_ns: tuple[float, ...]
    overhead_ns: float
    whole_ns: float


Key = tuple[str, str]  # (class, precision)


@dataclass(frozen=True)
class Part:
    """The predicted time of one (class, precision) of a model: ``ops`` ops, ``flops`` FLOPs."""

    cls: str
    precision: str
    ops: int
    flops: int
    ns: float
    extrapolated: bool = False


@dataclass(frozen=True)
class Estimate:
    """A model's predicted Invoke (ns) on a group, by part, with what was extrapolated."""

    ns: float
    invoke_ns: float
    parts: tuple[Part, ...]
    extrapolated: tuple[str, ...]


@dataclass(frozen=True)
class Fit:
    """The fitted model of one group. ``ns_per_flop[(class, precision)]`` (1 / rate; 0 means the
    time of those ops is all in the per-op cost), ``per_op_ns``, ``invoke_ns``; the op types
    (``types``) and the names of the models whose times and profiles it was fitted on."""

    group: Group
    ns_per_flop: dict[Key, float]
    per_op_ns: float
    invoke_ns: float
    models: tuple[str, ...]
    profiles: tuple[str, ...]
    types: frozenset[str] = field(default_factory=frozenset)
    equations: int = field(default=0)

    def gflops(self, key: Key) -> float:
        """Achieved GFLOP/s (= FLOPs per ns) of a (class, precision); inf when it costs no FLOP time."""
        t = self.ns_per_flop[key]
        return 1.0 / t if t > 0 else math.inf

    def estimate(self, model: Model) -> Estimate:
        """The model's predicted Invoke on this group, by (class, precision)."""
        notes: dict[str, None] = {}  # ordered set
        parts: dict[Key, list[float]] = {}  # key -> [ops, flops, ns, extrapolated]
        for op in model.ops:
            cost, said = self._op_ns(op)
            notes.update(dict.fromkeys(said))
            p = parts.setdefault((op.cls, op.precision), [0, 0, 0.0, 0])
            p[0] += 1
            p[1] += op.flops or 0
            p[2] += cost
            p[3] = p[3] or bool(said)
        built = tuple(Part(k[0], k[1], int(p[0]), int(p[1]), p[2], bool(p[3])) for k, p in parts.items())
        return Estimate(self.invoke_ns + sum(p.ns for p in built), self.invoke_ns,
                        tuple(sorted(built, key=lambda p: -p.ns)), tuple(notes))

    def _op_ns(self, op: Op) -> tuple[float, list[str]]:
        """One op's predicted ns and the notes saying what was extrapolated for it."""
        where = self.group.label()
        notes = [] if op.type in self.types else [f"{op.type} ({op.cls}) never measured on {where}"]
        if op.flops is None:
            return self.per_op_ns, [*notes, f"{op.type}: FLOPs unknown; only its per-op time is counted"]
        key = (op.cls, op.precision)
        if not op.flops or key in self.ns_per_flop:
            return self.per_op_ns + op.flops * self.ns_per_flop.get(key, 0.0), notes
        rate, used = self._fallback(key)
        return self.per_op_ns + op.flops * rate, [*notes, f"{op.type} {op.precision} never measured on {where}; "
                                                          f"used {used}"]

    def _fallback(self, key: Key) -> tuple[float, str]:
        cls, precision = key
        same = {p: t for (c, p), t in self.ns_per_flop.items() if c == cls}
        if "float32" in same:
            return same["float32"], f"the {cls} float32 rate"
        if same:
            near = sorted(same, key=lambda p: (_precision_distance(p, precision), p))[0]
            return same[near], f"the {cls} {near} rate"
        if self.ns_per_flop:
            return statistics.median(self.ns_per_flop.values()), "the median rate of the classes measured"
        return 0.0, "no rate (nothing with FLOPs was measured): its FLOPs cost nothing"


def _precision_distance(a: str, b: str) -> int:
    """How far apart two precisions are for a fallback: same integer-ness first."""
    def integer(p: str) -> bool:
        return p in ("int8", "int16x8", "uint8")
    return 0 if integer(a) == integer(b) else 1


class _Columns:
    """The unknowns' column indices: one per (class, precision) with FLOPs, the per-op cost, the Invoke."""

    def __init__(self, models: Iterable[Model]) -> None:
        ops = [op for m in models for op in m.ops]
        self.types = frozenset(op.type for op in ops)
        self.keys = sorted({(op.cls, op.precision) for op in ops if op.flops})
        self.rate = {k: i for i, k in enumerate(self.keys)}
        self.op = len(self.keys)
        self.invoke = self.op + 1
        self.size = self.invoke + 1

    def row(self, ops: Iterable[Op], invoke: bool) -> np.ndarray:
        r = np.zeros(self.size)
        for op in ops:
            r[self.op] += 1.0
            if op.flops:
                r[self.rate[(op.cls, op.precision)]] += op.flops
        r[self.invoke] = 1.0 if invoke else 0.0
        return r


def fit(group: Group, wholes: Sequence[Whole], layers: Sequence[Layers]) -> Fit:
    """The group's model fitted on its whole-model times and per-layer profiles (see the module's
    docstring); times of other groups are ignored. Raises ValueError when there is nothing to fit."""
    wholes = [w for w in wholes if w.group == group and w.ns > 0]
    layers = [p for p in layers if p.group == group and p.whole_ns > 0]
    if not wholes and not layers:
        raise ValueError(f"no time measured on {group.label()}")
    cols = _Columns([w.model for w in wholes] + [p.model for p in layers])
    rows, rhs = [], []
    for w in wholes:
        rows.append(cols.row(w.model.ops, invoke=True) / w.ns)
        rhs.append(1.0)
    for p in layers:
        for op, ns in zip(p.model.ops, _scaled(p), strict=True):
            if math.isfinite(ns):
                rows.append(cols.row([op], invoke=False) / p.whole_ns)
                rhs.append(ns / p.whole_ns)
        if math.isfinite(p.overhead_ns):
            rows.append(cols.row([], invoke=True) / p.whole_ns)
            rhs.append(p.overhead_ns / p.whole_ns)
    a, b = np.array(rows), np.array(rhs)
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    # Scaled columns: ns per FLOP and ns per op differ 10^4-fold, and the solver's tolerance is absolute.
    x = nnls(a / norms, b, maxiter=50 * a.shape[1])[0] / norms
    return Fit(group, {k: float(x[i]) for k, i in cols.rate.items()},
               float(x[cols.op]), float(x[cols.invoke]),
               tuple(sorted({w.model.name for w in wholes})), tuple(sorted({p.model.name for p in layers})),
               cols.types, len(rows))


def _scaled(p: Layers) -> list[float]:
    """The profile's layer times scaled to add up to its whole-model time less the empty prefix."""
    resolved = [ns for ns in p.op_ns if math.isfinite(ns)]
    total = sum(resolved)
    target = p.whole_ns - (p.overhead_ns if math.isfinite(p.overhead_ns) else 0.0)
    scale = target / total if total > 0 and target > 0 else 1.0
    return [ns * scale for ns in p.op_ns]


@dataclass(frozen=True)
class Check:
    """A model predicted from the group's other models (its own times and profiles left out)."""

    group: Group
    model: Model
    measured_ns: float
    estimate: Estimate

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.estimate.ns - self.measured_ns) / self.measured_ns


def leave_one_out(wholes: Sequence[Whole], layers: Sequence[Layers],
                  same: Callable[[Model], str] = lambda m: m.sha256) -> list[Check]:
    """Each whole-model time predicted by a fit on everything else of its group, without any time
    or profile of the same model (``same``: by default the file's sha256; a benchmark may pass the
    base model's name to leave every variant of it out); a group with one model cannot be checked."""
    checks = []
    for w in wholes:
        out = same(w.model)
        keep_w = [o for o in wholes if o.group == w.group and same(o.model) != out]
        keep_p = [p for p in layers if p.group == w.group and same(p.model) != out]
        if keep_w or keep_p:
            checks.append(Check(w.group, w.model, w.ns, fit(w.group, keep_w, keep_p).estimate(w.model)))
    return checks
