"""Per-layer times: the maths of a layer profile (prefix differences or a firmware profiler's).

See harness.models.prefixes for how prefixes are built and harness.scenarios.profile for how they
are timed on a board. Pure functions over raw samples, except ``firmware_profiles``, which reads a
stored run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, MeasurementError
from harness.models.analysis import ModelAnalysis, analyze
from harness.models.files import sha256
from harness.results import store
from harness.results.summary import summarize


@dataclass(frozen=True)
class LayerTime:
    """One op's measured time (ns, median of paired per-round differences) next to its FLOPs."""

    index: int
    type: str
    ns: float
    flops: int | None
    time_share: float   # of sum(layers), 0..1
    flops_share: float | None  # of the model's counted FLOPs, 0..1

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "ns": round(self.ns), "flops": self.flops,
                "time_share": self.time_share, "flops_share": self.flops_share}


@dataclass(frozen=True)
class LayerProfile:
    """Per-layer times of one model on one board, with the sum check and every raw sample.

    ``whole_ns``: median Invoke of the original model. ``overhead_ns``: median Invoke of the
    empty prefix. ``sum_check``: (overhead + sum of layers - whole) / whole, and ``sum_check_se``
    its standard error from the samples' own noise (bootstrap over turns). ``clock``: "wall"
    (perf_counter_ns) or "cpu" (the Invoking thread's CPU time, threads = 1 only). ``rounds_ns``:
    [round][prefix 0..N, then the original model] -> that model's Invoke samples in the round.
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
    method: str = "prefix differencing (prefix_timer.py)"

    def heaviest(self, n: int = 5) -> tuple[LayerTime, ...]:
        return tuple(sorted(self.layers, key=lambda layer: layer.ns, reverse=True)[:n])

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "runtime": self.runtime, "threads": self.threads,
                "xnnpack": self.xnnpack, "method": self.method,
                "clock": self.clock, "slices": self.slices,
                "whole_ns": round(self.whole_ns), "overhead_ns": round(self.overhead_ns),
                "sum_ns": round(self.sum_ns), "sum_check": self.sum_check,
                "sum_check_se": self.sum_check_se,
                "layers": [layer.to_json() for layer in self.layers],
                "rounds_ns": [[list(s) for s in r] for r in self.rounds_ns], "notes": list(self.notes)}


def layer_profile(analysis: ModelAnalysis, rounds_ns: Sequence[Sequence[Sequence[int]]], *,
                  slices: int = 1, model: str = "", target: str = "", runtime: str = "", threads: int = 1,
                  xnnpack: bool = False, clock: str = "wall") -> LayerProfile:
    """Per-layer times from raw samples: ``rounds_ns[r][k]`` are the Invoke times (ns) of prefix k
    (k = 0..N) in round r, and ``rounds_ns[r][N+1]`` those of the original model, taken in
    ``slices`` equal turns per round. The unit of pairing is one turn: each model's median in a
    turn, differenced with the previous prefix's median of the same turn (timed right beside it).
    """
    n = len(analysis.ops)
    if (not rounds_ns or slices < 1
            or any(len(r) != n + 2 or any(not s or len(s) % slices for s in r) for r in rounds_ns)):
        raise MeasurementError(f"{model}: expected {n + 2} timed models per round ({n} ops + empty prefix + "
                               f"whole model), each with samples in each of {slices} turn(s)",
                               target=target or None)
    turns = []
    for r in rounds_ns:
        for t in range(slices):
            turns.append([statistics.median(s[t * (len(s) // slices):(t + 1) * (len(s) // slices)]) for s in r])
    layer_ns = [statistics.median(u[i + 1] - u[i] for u in turns) for i in range(n)]
    overhead = statistics.median(u[0] for u in turns)
    whole = statistics.median(u[n + 1] for u in turns)
    total = sum(layer_ns)
    layers = _layers(analysis, layer_ns)
    notes = []
    if xnnpack:
        notes.append("XNNPACK on: ops the whole model fuses are split at prefix boundaries; "
                     "run with xnnpack off for per-kernel times")
    negative = [op.index for op, ns in zip(analysis.ops, layer_ns, strict=True) if ns < 0]
    if negative:
        notes.append(f"{len(negative)} layer(s) measured below zero (below the noise): ops "
                     f"{', '.join(map(str, negative))}")
    return LayerProfile(model, target, runtime, threads, xnnpack, layers, whole, overhead, total,
                        (overhead + total - whole) / whole if whole else float("nan"),
                        tuple(tuple(tuple(int(x) for x in s) for s in r) for r in rounds_ns), slices, clock,
                        tuple(notes), _bootstrap_se(turns))


BOOTSTRAP = 200  # resamples; the standard error of a standard error this way is about 5 %


def _bootstrap_se(turns: list[list[float]]) -> float:
    """Standard error of ``sum_check``: recompute it over turns resampled with replacement.

    It is the noise of the measurement itself, so a sum check within a few of these is what
    noise alone would give; seeded, so a profile's figures are reproducible from its samples.
    """
    import numpy as np

    t = np.asarray(turns, dtype=float)
    if len(t) < 2:
        return float("nan")
    rng = np.random.default_rng(0)
    checks = []
    for _ in range(BOOTSTRAP):
        b = t[rng.integers(0, len(t), len(t))]
        whole = float(np.median(b[:, -1]))
        layers = float(np.median(np.diff(b[:, :-1], axis=1), axis=0).sum())
        checks.append((float(np.median(b[:, 0])) + layers - whole) / whole if whole else 0.0)
    return float(np.std(checks))



def _layers(analysis: ModelAnalysis, layer_ns: list[float]) -> tuple[LayerTime, ...]:
    """Each op's time with its share of the summed layer time and its share of the model's FLOPs."""
    total, flops_total = sum(layer_ns), analysis.total_flops
    return tuple(
        LayerTime(op.index, op.type, ns, op.flops, ns / total if total > 0 else 0.0,
                  (op.flops / flops_total) if (op.flops is not None and flops_total) else None)
        for op, ns in zip(analysis.ops, layer_ns, strict=True))

def firmware_profile(analysis: ModelAnalysis, ops: Sequence[dict[str, Any]], whole_ns: float, *,
                     model: str = "", target: str = "", runtime: str = "tflite-micro",
                     source: str = "firmware profiler") -> LayerProfile:
    """Per-layer times from a TFLite Micro firmware's own profiler (an ``op_profile`` message:
    ``ops`` = [{index, op, ns}] of one Invoke), checked against ``whole_ns``, the board's median
    Invoke (ns) of the same benchmark. One profiled Invoke has no spread: ``sum_check_se`` is NaN.

    Raises MeasurementError when the profiled ops are not this model's ops, in order.
    """
    got = [(int(o["index"]), str(o["op"])) for o in ops]
    want = [(op.index, op.type) for op in analysis.ops]
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        raise MeasurementError(f"{model}: the firmware profiled {len(got)} ops, the model has {len(want)}; they "
                               f"differ from op {first} ({got[first] if first < len(got) else 'none'} vs "
                               f"{want[first] if first < len(want) else 'none'})", target=target or None,
                               hint="profile the same .tflite file that was benchmarked")
    layer_ns = [float(o["ns"]) for o in ops]
    total = sum(layer_ns)
    layers = _layers(analysis, layer_ns)
    notes = ("one profiled Invoke (the firmware keeps the last); the whole-model time is the median of "
             "the benchmark's Invoke samples",)
    return LayerProfile(model, target, runtime, 1, False, layers, whole_ns, 0.0, total,
                        (total - whole_ns) / whole_ns if whole_ns else float("nan"), (), 0, "device timer",
                        notes, float("nan"), source)


def firmware_profiles(run: Path, model: Path) -> list[LayerProfile]:
    """Per-layer profiles that MCU firmware profilers sent (``op_profile``) for ``model`` in the
    run in directory ``run``, one per benchmark of that exact file (matched by sha256).

    Raises ConfigError naming the run and the model when there is none.
    """
    analysis = analyze(model)
    sha = sha256(model)
    _, benchmarks = store.load_run(run)
    profiles = []
    for b in benchmarks:
        s = summarize(b)
        for msg in b.extra:
            if msg.get("type") == "op_profile" and b.model_sha256 == sha and s.invoke is not None:
                target = b.target + (" (emulated)" if b.hello.get("emulated") else "")
                profiles.append(firmware_profile(analysis, msg.get("ops") or [], s.invoke.median, model=str(model),
                                                 target=target, source=str(msg.get("source", "firmware profiler"))))
    if not profiles:
        raise ConfigError(f"run {run.name} has no firmware op profile of {model.name}",
                          hint="benchmark this model on a serial target whose firmware has a profiler, "
                               "or use --profile TARGET on a local or ssh board")
    return profiles
