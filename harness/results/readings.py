"""What stored runs measured, as the latency fit reads it (harness.results.fit).

From a benchmark run: each model's median Invoke on each board (a ``Whole``), and the per-op
times an MCU firmware profiler sent (``op_profile``) as a ``Layers``. From a profile run: each
profile's per-layer times, recomputed from its raw rounds (harness.results.layers). Every model is
read again from the file the run names, and used only when its sha256 still matches what was
measured; otherwise it is left out and ``Readings.skipped`` says why, in one line each.

A model measured in several runs on the same board, threads and XNNPACK setting counts once, at
the median of its runs' medians, so that no model weighs more for having been run more often.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models.analysis import ModelAnalysis, OpInfo, analyze
from harness.models.files import sha256
from harness.results import store
from harness.results.benchmark import Benchmark
from harness.results.fit import Group, Layers, Model, Op, Whole, op_class
from harness.results.layers import stored_profiles
from harness.results.summary import summarize


@dataclass(frozen=True)
class Readings:
    wholes: tuple[Whole, ...]
    layers: tuple[Layers, ...]
    skipped: tuple[str, ...]


def fit_model(analysis: ModelAnalysis, name: str, sha: str) -> Model:
    """The fit's view of a model: each op's class, precision and FLOPs."""
    return Model(name, sha, analysis.scheme_detail, tuple(
        Op(op.type, op_class(op.type, op.kind), kernel_precision(op), op.flops)
        for op in analysis.ops))


def kernel_precision(op: OpInfo) -> str:
    """What the op's kernel computes in: a float16 or weight-only layer whose weights a DEQUANTIZE
    expands (its inputs are all float32 by then) runs the float32 kernel."""
    if op.precision in ("float16", "weight_only_int8", "weight_only_int4") and all(
            t.dtype == "float32" for t in op.inputs):
        return "float32"
    return op.precision


class _Models:
    """Model files read once each, by path, checked against the sha256 that was measured."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[str, ModelAnalysis | None]] = {}

    def get(self, path: Path, sha: str, name: str) -> Model | None:
        if path not in self._seen:
            self._seen[path] = (sha256(path), analyze(path)) if path.is_file() else ("", None)
        got, analysis = self._seen[path]
        return fit_model(analysis, name, sha) if analysis is not None and got == sha else None


def read_runs(runs: Sequence[Path]) -> Readings:
    """Everything the runs in directories ``runs`` measured (benchmark and profile runs alike)."""
    models = _Models()
    wholes: list[Whole] = []
    layers: list[Layers] = []
    skipped: list[str] = []
    for run in runs:
        if store.run_kind(store.load_meta(run)) == "profile":
            _profiles(run, models, layers, skipped)
        else:
            _benchmarks(run, models, wholes, layers, skipped)
    return Readings(_merged(wholes), tuple(layers), tuple(skipped))


def _benchmarks(run: Path, models: _Models, wholes: list[Whole], layers: list[Layers], skipped: list[str]) -> None:
    meta, benchmarks = store.load_run(run)
    listed = meta.get("models")
    # Without run.json's model list no file can be found again: say so, not "no longer at None".
    unknown = None
    if not isinstance(listed, dict):
        unknown = store.read_meta(run)[1] or f"run.json of {run.name} lists no models"
    by_sha = {sha: Path(p) for p, sha in listed.items()} if isinstance(listed, dict) else {}
    for b in benchmarks:
        s = summarize(b)
        path = by_sha.get(b.model_sha256)
        if s.invoke is None or not s.invoke.median:
            skipped.append(f"{b.target} {b.model}: no Invoke samples")
            continue
        if path is None:
            why = f"{unknown}; model paths unknown" if unknown else f"run.json of {run.name} does not list it"
            skipped.append(f"{b.target} {b.model}: {why}")
            continue
        model = models.get(path, b.model_sha256, b.model)
        if model is None:
            skipped.append(f"{b.target} {b.model}: the model file measured is no longer at {path}")
            continue
        target = b.target + (" (emulated)" if b.hello.get("emulated") else "")
        group = Group(target, b.threads, bool(b.model_info.get("xnnpack")))
        wholes.append(Whole(group, model, s.invoke.median))
        layers.extend(_firmware_layers(b, group, model, s.invoke.median))


def _firmware_layers(b: Benchmark, group: Group, model: Model, whole_ns: float) -> list[Layers]:
    """The per-op times a firmware profiler sent for this benchmark, when they are this model's ops."""
    found = []
    for msg in b.extra:
        ops = (msg.get("ops") or []) if msg.get("type") == "op_profile" else []
        if ops and [str(o.get("op")) for o in ops] == [op.type for op in model.ops]:
            found.append(Layers(group, model, tuple(float(o["ns"]) for o in ops), math.nan, whole_ns))
    return found


def _profiles(run: Path, models: _Models, layers: list[Layers], skipped: list[str]) -> None:
    for record in stored_profiles(run):
        p = record.profile
        if p is None:
            skipped.append(f"{record.target} {record.model}: profile run {run.name} timed no round")
            continue
        model = models.get(Path(p.model), record.model_sha256, record.model)
        if model is None:
            skipped.append(f"{record.target} {record.model}: the model file profiled is no longer at {p.model}")
            continue
        if [layer.type for layer in p.layers] != [op.type for op in model.ops]:
            skipped.append(f"{record.target} {record.model}: profile run {run.name} has other ops than the model")
            continue
        layers.append(Layers(Group(p.target, p.threads, p.xnnpack), model, tuple(_layer_ns(layer) for layer in p.layers),
                             p.overhead_ns, p.whole_ns))


def _layer_ns(layer: Any) -> float:
    """A layer's time, NaN where the profile could not resolve it."""
    return float(layer.ns) if math.isfinite(layer.ns) else math.nan


def _merged(wholes: Sequence[Whole]) -> tuple[Whole, ...]:
    """One Whole per (group, model file): the median of its runs' medians, in first-seen order."""
    groups: dict[tuple[Group, str], list[Whole]] = {}
    for w in wholes:
        groups.setdefault((w.group, w.model.sha256), []).append(w)
    return tuple(ws[0] if len(ws) == 1 else Whole(ws[0].group, ws[0].model, statistics.median(w.ns for w in ws))
                 for ws in groups.values())
