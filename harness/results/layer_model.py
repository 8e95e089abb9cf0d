"""Per-layer times: the data model of a layer profile and its construction from raw samples.

``layer_profile`` turns the raw rounds of the agent's profile mode into a ``LayerProfile``
through the estimator of harness.results.layer_stats: one time per op (a *layer*), and one per
*row*, the unit the profile can honestly time. A row is one op, or a delegate partition (with
XNNPACK on, the ops the delegate took over: ``delegated``, from the board): prefixes that end
inside a partition split the delegate's graph, so only the prefixes on its boundaries time it as
the benchmarked model runs it. The sum check adds the rows' raw medians, negative ones included
(clipping them would bias it upwards). A row is *below resolution* unless its 95 % interval lies
above zero: the profile cannot tell it from zero, and it is never shown as a negative time.
Re-exported by harness.results.layers, whose names are the public API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from harness.errors import MeasurementError


class OpFacts(Protocol):
    """What the per-layer maths needs of one op (harness.models.analysis.OpInfo has it)."""

    @property
    def index(self) -> int: ...

    @property
    def type(self) -> str: ...

    @property
    def flops(self) -> int | None: ...


class OpsFacts(Protocol):
    """The model's ops in execution order and their counted FLOPs (a ModelAnalysis has them)."""

    @property
    def ops(self) -> Sequence[OpFacts]: ...

    @property
    def total_flops(self) -> int: ...


def below_resolution(ns: float, interval: tuple[float, float] | None) -> bool:
    """True unless the time is told apart from zero: its 95 % interval lies above 0 and so does
    the median. A row that comes out negative is never shown as a negative time: it is below
    resolution (when its whole interval is below 0, a note says more)."""
    return interval is not None and not (interval[0] > 0 and ns > 0)


def _interval_json(interval: tuple[float, float] | None) -> list[int] | None:
    return None if interval is None else [round(interval[0]), round(interval[1])]


@dataclass(frozen=True)
class LayerTime:
    """One op's measured time (ns: the estimator's raw median, negative when the op is below the
    noise) next to its FLOPs; ``interval_ns`` its 95 % interval (None for a single profiled
    Invoke), ``resolved`` False when it is below resolution, ``group`` the index of its row."""

    index: int
    type: str
    ns: float
    flops: int | None
    time_share: float   # of sum(layers), 0..1
    flops_share: float | None  # of the model's counted FLOPs, 0..1
    interval_ns: tuple[float, float] | None = None
    resolved: bool = True
    group: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "ns": round(self.ns), "flops": self.flops,
                "time_share": self.time_share, "flops_share": self.flops_share,
                "interval_ns": _interval_json(self.interval_ns), "resolved": self.resolved, "group": self.group}


@dataclass(frozen=True)
class LayerRow:
    """A row of the profile: ops ``first``..``last`` (one op, or a delegate partition when
    ``delegate`` names the delegate), timed between the prefixes that end on its boundaries."""

    first: int
    last: int
    types: tuple[str, ...]
    delegate: str | None
    ns: float
    interval_ns: tuple[float, float] | None
    resolved: bool
    flops: int | None
    time_share: float  # of the rows' sum, 0..1
    flops_share: float | None

    @property
    def fused(self) -> bool:
        return self.delegate is not None and self.last > self.first

    def label(self) -> str:
        """"CONV_2D" for one op; "ops 3–7 fused by XNNPACK" for a partition."""
        if not self.fused:
            return self.types[0] + (f" (by {self.delegate})" if self.delegate else "")
        return f"ops {self.first}–{self.last} fused by {self.delegate}"

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "types": list(self.types), "delegate": self.delegate,
                "ns": round(self.ns), "interval_ns": _interval_json(self.interval_ns), "resolved": self.resolved,
                "flops": self.flops, "time_share": self.time_share, "flops_share": self.flops_share}


@dataclass(frozen=True)
class ProfileStop:
    """Why the profile has as many rounds as it has: ``by`` "stable" (the sum check's SE fell
    under ``target_se``), "max_time" (one more session would have ended after ``max_time_s``) or
    "rounds" (a fixed --rounds); ``wall_s`` the host's wall time of the board's part."""

    by: str
    rounds: int
    sessions: int
    wall_s: float | None = None
    target_se: float | None = None
    max_time_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "rounds": self.rounds, "sessions": self.sessions, "wall_s": self.wall_s,
                "target_se": self.target_se, "max_time_s": self.max_time_s}


@dataclass(frozen=True)
class LayerProfile:
    """Per-layer times of one model on one board, with the sum check and every raw sample.

    ``whole_ns``: the whole model's Invoke; ``overhead_ns``: the empty prefix's. ``sum_ns``: the
    sum of the rows (``groups``; one per op unless a delegate took partitions). ``sum_check``:
    (overhead + sum_ns - whole) / whole, ``sum_check_se`` its standard error from the samples'
    own noise (bootstrap over turns). ``clock``: "wall" (perf_counter_ns) or "cpu" (the Invoking
    thread's CPU time, threads = 1 only). ``rounds_ns``: [round][prefix 0..N, then the original
    model] -> that model's Invoke samples in the round. ``stop``: why the rounds ended (None when
    the run was cut short), ``turns`` how many turns the figures come from.
    """

    model: str
    target: str
    runtime: str
    threads: int
    xnnpack: bool
    layers: tuple[LayerTime, ...]
    whole_ns: float
    overhead_ns: float
    sum_ns: float
    sum_check: float
    rounds_ns: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)
    slices: int = 1
    clock: str = "wall"
    notes: tuple[str, ...] = ()
    sum_check_se: float = float("nan")
    method: str = "prefix differencing (tflite_agent.py profile)"
    run_id: str | None = None  # the stored run it was computed from
    groups: tuple[LayerRow, ...] = ()
    stop: ProfileStop | None = None
    turns: int = 0
    delegated: tuple[tuple[int, ...], ...] | None = None  # the board's delegate partitions, if known

    def heaviest(self, n: int = 5) -> tuple[LayerTime, ...]:
        return tuple(sorted(self.layers, key=lambda layer: layer.ns, reverse=True)[:n])

    def heaviest_rows(self, n: int = 5) -> tuple[LayerRow, ...]:
        return tuple(sorted(self.groups, key=lambda row: row.ns, reverse=True)[:n])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "profile", "run_id": self.run_id,
                "model": self.model, "target": self.target, "runtime": self.runtime, "threads": self.threads,
                "xnnpack": self.xnnpack, "method": self.method,
                "clock": self.clock, "slices": self.slices,
                "whole_ns": round(self.whole_ns), "overhead_ns": round(self.overhead_ns),
                "sum_ns": round(self.sum_ns), "sum_check": self.sum_check,
                "sum_check_se": self.sum_check_se, "turns": self.turns,
                "stop": self.stop.to_json() if self.stop is not None else None,
                "delegated": [list(p) for p in self.delegated] if self.delegated is not None else None,
                "layers": [layer.to_json() for layer in self.layers],
                "groups": [row.to_json() for row in self.groups],
                "rounds_ns": [[list(s) for s in r] for r in self.rounds_ns], "notes": list(self.notes)}


def fused_rows(n_ops: int, partitions: Sequence[Sequence[int]] | None) -> list[tuple[int, int, bool]]:
    """The rows (first, last, delegated) tiling ops 0..n_ops-1: each partition's span (merged with
    any it overlaps; an op inside a span the delegate did not take runs within that row's time
    too), and every other op alone."""
    spans: list[list[int]] = []
    for p in sorted(([min(p), max(p)] for p in partitions or () if p), key=lambda s: s[0]):
        if spans and p[0] <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], p[1])
        else:
            spans.append(p)
    rows: list[tuple[int, int, bool]] = []
    i = 0
    for first, last in spans:
        rows.extend((k, k, False) for k in range(i, min(first, n_ops)))
        if first < n_ops:
            rows.append((first, min(last, n_ops - 1), True))
        i = max(i, last + 1)
    rows.extend((k, k, False) for k in range(i, n_ops))
    return rows


def layer_profile(analysis: OpsFacts, rounds_ns: Sequence[Sequence[Sequence[int]]], *,
                  slices: int = 1, forward: Sequence[Sequence[bool]] | None = None,
                  delegated: Sequence[Sequence[int]] | None = None, stop: ProfileStop | None = None,
                  model: str = "", target: str = "", runtime: str = "", threads: int = 1,
                  xnnpack: bool = False, clock: str = "wall") -> LayerProfile:
    """Per-layer times from raw samples: ``rounds_ns[r][k]`` are the Invoke times (ns) of prefix k
    (k = 0..N) in round r, and ``rounds_ns[r][N+1]`` those of the original model, taken in
    ``slices`` equal turns per round; ``forward[r][t]`` whether turn t of round r ran the models in
    forward order (default: the agent's rule, forward when r + t is even). ``delegated``: the
    board's delegate partitions of the whole model (op indices), which become rows.
    """
    from harness.results.layer_stats import span_stats, turn_values

    n = len(analysis.ops)
    if (not rounds_ns or slices < 1
            or any(len(r) != n + 2 or any(not s or len(s) % slices for s in r) for r in rounds_ns)):
        raise MeasurementError(f"{model}: expected {n + 2} timed models per round ({n} ops + empty prefix + "
                               f"whole model), each with samples in each of {slices} turn(s)",
                               target=target or None)
    orders = forward or [[(r + t) % 2 == 0 for t in range(slices)] for r in range(len(rounds_ns))]
    if len(orders) != len(rounds_ns) or any(len(o) != slices for o in orders):
        raise MeasurementError(f"{model}: the turn orders do not match the rounds", target=target or None)
    rows = fused_rows(n, delegated)
    spans = [(i, i + 1) for i in range(n)] + [(a, b + 1) for a, b, fused in rows if fused and b > a]
    row_index, extra = [], n
    for a, b, fused in rows:
        row_index.append(a if not (fused and b > a) else extra)
        extra += 1 if fused and b > a else 0
    stats = span_stats(turn_values(rounds_ns, slices), [o for r in orders for o in r], spans, row_index)
    label = "XNNPACK" if xnnpack else "a delegate"
    group_of = {k: g for g, (a, b, _) in enumerate(rows) for k in range(a, b + 1)}
    layers = _layers(analysis, list(stats.ns[:n]), stats.intervals[:n], group_of)
    groups = _rows(analysis, rows, [stats.ns[i] for i in row_index], [stats.intervals[i] for i in row_index],
                   label)
    parts = tuple(tuple(int(i) for i in p) for p in delegated) if delegated is not None else None
    profile = LayerProfile(model, target, runtime, threads, xnnpack, layers, stats.whole_ns, stats.overhead_ns,
                           stats.sum_ns, stats.sum_check,
                           tuple(tuple(tuple(int(x) for x in s) for s in r) for r in rounds_ns), slices, clock,
                           (), stats.sum_check_se, groups=groups, stop=stop, turns=stats.turns, delegated=parts)
    return replace(profile, notes=profile_notes(profile))


def profile_notes(p: LayerProfile) -> tuple[str, ...]:
    """What the figures of ``p`` cannot say by themselves: what a delegate hides, and which rows
    are below resolution or below zero beyond their noise."""
    notes = []
    fused = [row for row in p.groups if row.fused]
    if p.xnnpack and p.delegated is None:
        notes.append("XNNPACK on, but this runtime does not list its delegate nodes: the rows are single ops, "
                     "and prefixes that split a delegate partition make them estimates")
    elif p.xnnpack and not p.delegated:
        notes.append("XNNPACK on, but the delegate took no op: every op ran its builtin kernel")
    elif fused:
        spans = ", ".join(f"{row.first}–{row.last}" for row in fused)
        notes.append(f"XNNPACK took ops {spans} as delegate partitions: each is one row, timed between the "
                     "prefixes that end on its boundaries, as the benchmarked model runs it. Inside a "
                     "partition a prefix boundary splits the delegate's graph (XNNPACK folds padding and "
                     "activations into convolutions and elides reshapes, and the cut tensor becomes an "
                     "output), so per-op times there are split estimates (the JSON's layers, each with its "
                     "group); profile with --xnnpack off for each op's own kernel")
    low = [row for row in p.groups if not row.resolved]
    if low:
        notes.append(f"{len(low)} of {len(p.groups)} rows below resolution (ops {_ops(low)}): their 95 % "
                     "interval reaches 0 or below, so they are shown as < the interval's upper end, not as "
                     "times; the JSON keeps each raw median, which the sum check adds")
    negative = [row for row in p.groups if row.interval_ns is not None and row.interval_ns[1] < 0]
    if negative:
        notes.append(f"{len(negative)} row(s) below zero beyond their noise (ops {_ops(negative)}): chance "
                     "(one 95 % interval in 40 misses), or the prefix boundary changes what the runtime "
                     "does there (the cut tensor becomes a model output)")
    return tuple(notes)


def _ops(rows: Sequence[LayerRow]) -> str:
    return ", ".join(str(r.first) if r.first == r.last else f"{r.first}–{r.last}" for r in rows)


def _layers(analysis: OpsFacts, layer_ns: list[float],
            intervals: Sequence[tuple[float, float] | None] = (),
            group_of: dict[int, int] | None = None) -> tuple[LayerTime, ...]:
    """Each op's time with its share of the summed layer time and its share of the model's FLOPs."""
    total, flops_total = sum(layer_ns), analysis.total_flops
    bounds = list(intervals) or [None] * len(layer_ns)
    return tuple(
        LayerTime(op.index, op.type, ns, op.flops, ns / total if total > 0 else 0.0,
                  (op.flops / flops_total) if (op.flops is not None and flops_total) else None,
                  interval, not below_resolution(ns, interval), (group_of or {}).get(i))
        for i, (op, ns, interval) in enumerate(zip(analysis.ops, layer_ns, bounds, strict=True)))


def _rows(analysis: OpsFacts, rows: Sequence[tuple[int, int, bool]], ns: Sequence[float],
          intervals: Sequence[tuple[float, float] | None], delegate: str) -> tuple[LayerRow, ...]:
    total, flops_total = sum(ns), analysis.total_flops
    out = []
    for (a, b, fused), t, interval in zip(rows, ns, intervals, strict=True):
        ops = analysis.ops[a:b + 1]
        counted = [op.flops for op in ops]
        flops = None if any(f is None for f in counted) else sum(f for f in counted if f is not None)
        out.append(LayerRow(a, b, tuple(op.type for op in ops), delegate if fused else None, t, interval,
                            not below_resolution(t, interval), flops, t / total if total > 0 else 0.0,
                            flops / flops_total if flops is not None and flops_total else None))
    return tuple(out)
