"""Per-layer times: the maths of a layer profile (prefix differences or a firmware profiler's).

See harness.models.prefixes for how prefixes are built and harness.scenarios.profile for how they
are timed on a board. Pure functions over raw samples, except ``stored_profiles`` and
``firmware_profiles``, which read a stored run: a profile run's raw rounds are recomputed here
by the same ``layer_profile`` that served the run, so a stored profile can always be re-read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, MeasurementError
from harness.models.analysis import ModelAnalysis, analyze
from harness.models.files import sha256
from harness.results import store
from harness.results.benchmark import SCHEMA_VERSION
from harness.results.layer_model import (
    LayerProfile,
    LayerRow,
    LayerTime,
    OpFacts,
    OpsFacts,
    ProfileStop,
    _layers,
    _rows,
    below_resolution,
    fused_rows,
    layer_profile,
)
from harness.results.summary import summarize

__all__ = ["LayerProfile", "LayerRow", "LayerTime", "OpFacts", "OpsFacts", "ProfileRecord", "ProfileStop",
           "below_resolution", "firmware_profile", "firmware_profiles", "fused_rows", "layer_profile", "op_facts",
           "profile_from_record", "profiles_from_run", "stored_profiles"]


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
    """The per-layer profile of a stored profile record (its header and the messages after it):
    the raw ``round`` messages of every agent session through ``layer_profile``, with the clock
    the header names, the delegate partitions the board reported and the host's ``stop`` line.

    Raises MeasurementError when no round was timed (the agent failed or was stopped before).
    """
    plan = header.get("plan") or {}
    clock = str(plan.get("clock", "wall"))
    first = {m.get("type"): m for m in reversed(lines)}  # the first message of each type
    rounds = [m for m in lines if m.get("type") == "round"]
    if not rounds:
        raise MeasurementError(f"{header.get('model')}: no round was timed", target=header.get("target"))
    ops = StoredOps(tuple(StoredOp(int(o["index"]), str(o["type"]), o.get("flops")) for o in header.get("ops", ())))
    runtime = ((first.get("hello") or {}).get("runtime") or {}).get("name") or "?"
    slices = int((first.get("plan") or plan).get("slices", 1))
    forward = [m.get("forward") or [(int(m.get("round", 0)) + t) % 2 == 0 for t in range(slices)] for m in rounds]
    partitions = [((m.get("models") or [{}])[-1]).get("delegated") for m in lines if m.get("type") == "models"]
    p = layer_profile(ops, [m["ns"] if clock == "wall" else m["cpu_ns"] for m in rounds], slices=slices,
                      forward=forward, delegated=partitions[0] if partitions else None,
                      stop=_stop(plan, lines, len(rounds)),
                      model=str(header.get("model_path", header.get("model"))), target=str(header.get("target")),
                      runtime=runtime, threads=int(plan.get("threads", 1)),
                      xnnpack=bool(plan.get("xnnpack", False)), clock=clock)
    notes = []
    if any(part != partitions[0] for part in partitions):
        notes.append("the delegate partitioned the whole model differently in different sessions; the rows "
                     "follow the first")
    if p.stop is None:
        notes.append(f"incomplete: {len(rounds)} of {plan['rounds']} rounds were timed before the run stopped; "
                     "the figures come from those" if plan.get("rounds") else
                     f"incomplete: the run stopped after {len(rounds)} rounds, before its stop rule (the sum "
                     f"check's SE under {100 * float(plan.get('target_se', 0.02)):g} %, or "
                     f"{float(plan.get('max_time_s', 60)):g} s); the figures come from those")
    return replace(p, notes=p.notes + tuple(notes), run_id=run_id)


def _stop(plan: dict[str, Any], lines: Sequence[dict[str, Any]], rounds: int) -> ProfileStop | None:
    """Why the record's rounds ended: its host ``stop`` line (adaptive), or its ``summary`` (a
    fixed --rounds, one session); None when the run was cut short."""
    sessions = max(1, sum(m.get("type") == "session" for m in lines))
    line = next((m for m in lines if m.get("type") == "stop"), None)
    if line is not None:
        return ProfileStop(str(line.get("by")), rounds, sessions, float(line.get("wall_ns", 0)) / 1e9,
                           plan.get("target_se"), plan.get("max_time_s"))
    if plan.get("rounds") is not None and any(m.get("type") == "summary" for m in lines):
        return ProfileStop("rounds", rounds, sessions)
    return None


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
        profile = profile_from_record(header, lines, run_id) if has_rounds else None
        records.append(ProfileRecord(
            target=str(header.get("target")), model=str(header.get("model")), profile=profile,
            error=error or None, model_sha256=str(header.get("model_sha256", "")), run_id=run_id,
            complete=not error and profile is not None and profile.stop is not None))
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
    layers = _layers(analysis, layer_ns, group_of={i: i for i in range(len(layer_ns))})
    rows = _rows(analysis, [(i, i, False) for i in range(len(layer_ns))], layer_ns, [None] * len(layer_ns), "")
    notes = ("one profiled Invoke (the firmware keeps the last); the whole-model time is the median of "
             "the benchmark's Invoke samples",)
    return LayerProfile(model, target, runtime, 1, False, layers, whole_ns, 0.0, total,
                        (total - whole_ns) / whole_ns if whole_ns else float("nan"), (), 0, "device timer",
                        notes, float("nan"), source, groups=rows)


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
