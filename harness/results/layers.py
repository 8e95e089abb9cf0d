"""Per-layer times: the maths of a layer profile (prefix differences or a firmware profiler's).

See harness.models.prefixes for how prefixes are built and harness.scenarios.profile for how they
are timed on a board. Pure functions over raw samples, except ``stored_profiles`` and
``firmware_profiles``, which read a stored run: a profile run's raw rounds are recomputed here
by the same ``layer_profile`` that served the run, so a stored profile can always be re-read.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from harness.errors import ConfigError, MeasurementError
from harness.models.analysis import ModelAnalysis, analyze
from harness.models.files import sha256
from harness.results import store
from harness.results.benchmark import SCHEMA_VERSION
from harness.results.summary import summarize


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


@dataclass(frozen=True)
class StoredOp:
    index: int
    type: str
    flops: int | None


@dataclass(frozen=True)
class StoredOps:
    """The ops of a stored profile's header: enough to recompute it without the model file."""

    ops: tuple[StoredOp, ...]

    @property
    def total_flops(self) -> int:
        return sum(op.flops for op in self.ops if op.flops is not None)


def op_facts(analysis: OpsFacts) -> tuple[dict[str, Any], ...]:
    """Each op's {"index", "type", "flops"}, as a profile's header stores them."""
    return tuple({"index": op.index, "type": op.type, "flops": op.flops} for op in analysis.ops)


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
    method: str = "prefix differencing (tflite_agent.py profile)"
    run_id: str | None = None  # the stored run it was computed from

    def heaviest(self, n: int = 5) -> tuple[LayerTime, ...]:
        return tuple(sorted(self.layers, key=lambda layer: layer.ns, reverse=True)[:n])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "profile", "run_id": self.run_id,
                "model": self.model, "target": self.target, "runtime": self.runtime, "threads": self.threads,
                "xnnpack": self.xnnpack, "method": self.method,
                "clock": self.clock, "slices": self.slices,
                "whole_ns": round(self.whole_ns), "overhead_ns": round(self.overhead_ns),
                "sum_ns": round(self.sum_ns), "sum_check": self.sum_check,
                "sum_check_se": self.sum_check_se,
                "layers": [layer.to_json() for layer in self.layers],
                "rounds_ns": [[list(s) for s in r] for r in self.rounds_ns], "notes": list(self.notes)}


def layer_profile(analysis: OpsFacts, rounds_ns: Sequence[Sequence[Sequence[int]]], *,
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



def _layers(analysis: OpsFacts, layer_ns: list[float]) -> tuple[LayerTime, ...]:
    """Each op's time with its share of the summed layer time and its share of the model's FLOPs."""
    total, flops_total = sum(layer_ns), analysis.total_flops
    return tuple(
        LayerTime(op.index, op.type, ns, op.flops, ns / total if total > 0 else 0.0,
                  (op.flops / flops_total) if (op.flops is not None and flops_total) else None)
        for op, ns in zip(analysis.ops, layer_ns, strict=True))

@dataclass(frozen=True)
class ProfileRecord:
    """One stored profile (a record of a profile run): its per-layer profile when at least one
    round was timed, the error that ended it, and whether every planned round arrived."""

    target: str
    model: str
    profile: LayerProfile | None
    error: dict[str, Any] | None
    complete: bool
    model_sha256: str = ""
    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The object of `harness show PROFILE-RUN --json`: the profile's own fields (those of
        `harness analyze --json`'s ``profile``) plus ``schema_version``, ``complete`` and ``error``."""
        base = self.profile.to_json() if self.profile is not None else {
            "kind": "profile", "run_id": self.run_id, "model": self.model, "target": self.target}
        return {**base, "schema_version": SCHEMA_VERSION, "model_sha256": self.model_sha256,
                "complete": self.complete, "error": self.error}


def profile_from_record(header: dict[str, Any], lines: Sequence[dict[str, Any]],
                        run_id: str | None = None) -> LayerProfile:
    """The per-layer profile of a stored profile record (its header and the agent's messages):
    the raw ``round`` messages through ``layer_profile``, with the clock the header names.

    Raises MeasurementError when no round was timed (the agent failed or was stopped before).
    """
    plan = header.get("plan") or {}
    clock = str(plan.get("clock", "wall"))
    first = {m.get("type"): m for m in reversed(lines)}  # the first message of each type
    rounds = [m["ns"] if clock == "wall" else m["cpu_ns"] for m in lines if m.get("type") == "round"]
    if not rounds:
        raise MeasurementError(f"{header.get('model')}: no round was timed", target=header.get("target"))
    ops = StoredOps(tuple(StoredOp(int(o["index"]), str(o["type"]), o.get("flops")) for o in header.get("ops", ())))
    runtime = ((first.get("hello") or {}).get("runtime") or {}).get("name") or "?"
    slices = int((first.get("plan") or plan).get("slices", 1))
    p = layer_profile(ops, rounds, slices=slices, model=str(header.get("model_path", header.get("model"))),
                      target=str(header.get("target")), runtime=runtime, threads=int(plan.get("threads", 1)),
                      xnnpack=bool(plan.get("xnnpack", False)), clock=clock)
    planned = int(plan.get("rounds", len(rounds)))
    cut = () if "summary" in first else (f"incomplete: {len(rounds)} of {planned} rounds were timed before "
                                         "the run stopped; the figures come from those",)
    return replace(p, notes=p.notes + cut, run_id=run_id)


def stored_profiles(run: Path) -> list[ProfileRecord]:
    """Every profile of the profile run in directory ``run``, recomputed from its raw rounds."""
    run_id = str(store.load_meta(run).get("run_id") or run.name)
    records = []
    for path in store.records(run, "profile"):
        header, lines = store.read_record(path)
        error: dict[str, Any] = {}
        for msg in lines:  # the board's error and the host's account of it (with the hint), merged
            found = msg if msg.get("type") == "error" else (msg.get("error") if msg.get("type") == "end" else None)
            error.update({k: v for k, v in (found or {}).items() if v is not None and k not in ("v", "type")})
        has_rounds = any(m.get("type") == "round" for m in lines)
        records.append(ProfileRecord(
            target=str(header.get("target")), model=str(header.get("model")),
            profile=profile_from_record(header, lines, run_id) if has_rounds else None,
            error=error or None, model_sha256=str(header.get("model_sha256", "")), run_id=run_id,
            complete=not error and any(m.get("type") == "summary" for m in lines)))
    return records


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


def profiles_from_run(run: Path, model: Path) -> list[LayerProfile]:
    """Per-layer profiles of ``model`` (matched by sha256) in the stored run in directory ``run``:
    a profile run's profiles, recomputed from their rounds, or what MCU firmware profilers sent
    in a benchmark run (``firmware_profiles``).

    Raises ConfigError naming the run and the model when there is none.
    """
    if store.run_kind(store.load_meta(run)) != "profile":
        return firmware_profiles(run, model)
    sha = sha256(model)
    stored = [r.profile for r in stored_profiles(run) if r.profile is not None and r.model_sha256 == sha]
    if not stored:
        raise ConfigError(f"profile run {run.name} has no profile of {model.name}",
                          hint="pass the model that was profiled, or another run")
    return stored


def firmware_profiles(run: Path, model: Path) -> list[LayerProfile]:
    """Per-layer profiles that MCU firmware profilers sent (``op_profile``) for ``model`` in the
    benchmark run in directory ``run``, one per benchmark of that exact file (matched by sha256).

    Raises ConfigError naming the run and the model when there is none.
    """
    analysis = analyze(model)
    sha = sha256(model)
    meta, benchmarks = store.load_run(run)
    run_id = str(meta.get("run_id") or run.name)
    profiles = []
    for b in benchmarks:
        s = summarize(b)
        for msg in b.extra:
            if msg.get("type") == "op_profile" and b.model_sha256 == sha and s.invoke is not None:
                target = b.target + (" (emulated)" if b.hello.get("emulated") else "")
                p = firmware_profile(analysis, msg.get("ops") or [], s.invoke.median, model=str(model),
                                     target=target, source=str(msg.get("source", "firmware profiler")))
                profiles.append(replace(p, run_id=run_id))
    if not profiles:
        raise ConfigError(f"run {run.name} has no firmware op profile of {model.name}",
                          hint="benchmark this model on a serial target whose firmware has a profiler, "
                               "or use --profile TARGET on a local or ssh board")
    return profiles
