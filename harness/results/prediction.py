"""Throughput and latency predicted from FLOPs, from what boards measured in a stored run.

A board's achieved throughput for one (precision, threads) is the FLOPs it ran per ns of
measured Invoke (FLOPs/ns = GFLOP/s). The prediction of another model is its FLOPs divided by
that throughput. It ignores what FLOPs do not capture (memory-bound depthwise layers, per-op
overhead), which is why every prediction is validated leave-one-out on the measured models.

The precision of a group is the model's ``ModelAnalysis.scheme_detail`` (plus ``+xnnpack`` when
the delegate was on), not the coarser contract ``scheme``: a weight-only int8 model runs float32
kernels and must not share a throughput with a dynamic-range int8 one. Emulated boards keep the
label in their target name, so an emulator's GFLOP/s is never mistaken for a board's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.models.analysis import ModelAnalysis, analyze
from harness.models.files import sha256
from harness.results import store
from harness.results.summary import summarize

METHOD = "FLOPs / achieved FLOPs-per-ns of the board (per precision, threads)"


@dataclass(frozen=True)
class Measured:
    """One model's measured median Invoke on one board (``invoke_ns``, from the board's samples)."""

    target: str
    model: str
    precision: str  # the model's finer scheme (ModelAnalysis.scheme_detail)
    threads: int
    flops: int
    invoke_ns: float


@dataclass(frozen=True)
class Throughput:
    """Achieved GFLOP/s of a board for one precision and thread count, over ``models``."""

    target: str
    precision: str
    threads: int
    gflops: float
    models: tuple[str, ...]

    def predict_ns(self, flops: int) -> float:
        """Predicted Invoke time (ns) of a model of ``flops`` FLOPs."""
        return flops / self.gflops


@dataclass(frozen=True)
class PredictionCheck:
    """Leave-one-out: ``model`` predicted from the board's other models of the same group."""

    target: str
    model: str
    precision: str
    threads: int
    measured_ns: float
    predicted_ns: float

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_ns - self.measured_ns) / self.measured_ns


def throughputs(measured: Sequence[Measured]) -> list[Throughput]:
    """Achieved throughput per (target, precision, threads): sum of FLOPs / sum of Invoke ns, so
    larger models weigh more and a microsecond-scale model cannot dominate."""
    groups: dict[tuple[str, str, int], list[Measured]] = {}
    for m in measured:
        if m.invoke_ns > 0 and m.flops > 0:
            groups.setdefault((m.target, m.precision, m.threads), []).append(m)
    return [Throughput(t, p, n, sum(m.flops for m in ms) / sum(m.invoke_ns for m in ms),
                       tuple(m.model for m in ms)) for (t, p, n), ms in groups.items()]


def validate_predictions(measured: Sequence[Measured]) -> list[PredictionCheck]:
    """Predict each measured model from the other models of its (target, precision, threads)
    group; groups of one model cannot be validated and are left out."""
    checks = []
    for m in measured:
        others = [o for o in measured if o is not m and (o.target, o.precision, o.threads)
                  == (m.target, m.precision, m.threads)]
        fitted = throughputs(others)
        if fitted:
            checks.append(PredictionCheck(m.target, m.model, m.precision, m.threads, m.invoke_ns,
                                          fitted[0].predict_ns(m.flops)))
    return checks


@dataclass(frozen=True)
class Prediction:
    """One model (of ``flops`` FLOPs) predicted on every board of a run, with the leave-one-out
    check of each board and why any benchmark of the run was left out."""

    flops: int
    throughputs: tuple[Throughput, ...]
    checks: tuple[PredictionCheck, ...]
    skipped: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``prediction`` object of ``harness analyze --json`` (times in ns)."""
        return {
            "method": METHOD,
            "throughputs": [{"target": t.target, "precision": t.precision, "threads": t.threads,
                             "gflops": t.gflops, "models": list(t.models),
                             "predicted_ns": t.predict_ns(self.flops)} for t in self.throughputs],
            "validation": [{"target": c.target, "model": c.model, "precision": c.precision,
                            "threads": c.threads, "measured_ns": c.measured_ns,
                            "predicted_ns": c.predicted_ns, "error": c.error} for c in self.checks],
            "skipped": list(self.skipped),
        }


def measured_from_run(run: Path) -> tuple[list[Measured], list[str]]:
    """What the run in directory ``run`` measured, as Measured (median Invoke ns with the model's
    FLOPs), and why any benchmark was left out: no Invoke samples, or the model file measured is
    gone or changed (its sha256 no longer matches, so its FLOPs cannot be counted)."""
    meta, benchmarks = store.load_run(run)
    models = meta.get("models")
    # Without run.json's model list no file can be found again: say so, not "no longer at None".
    unknown = None
    if not isinstance(models, dict):
        unknown = store.read_meta(run)[1] or f"run.json of {run.name} lists no models"
    by_sha = {sha: Path(p) for p, sha in models.items()} if isinstance(models, dict) else {}
    measured: list[Measured] = []
    skipped: list[str] = []
    analyses: dict[Path, ModelAnalysis] = {}
    for b in benchmarks:
        s = summarize(b)
        model = by_sha.get(b.model_sha256)
        if s.invoke is None or not s.invoke.median:
            skipped.append(f"{b.target} {b.model}: no Invoke samples")
            continue
        if model is None:
            why = f"{unknown}; model paths unknown" if unknown else f"run.json of {run.name} does not list it"
            skipped.append(f"{b.target} {b.model}: {why}")
            continue
        if not model.is_file() or sha256(model) != b.model_sha256:
            skipped.append(f"{b.target} {b.model}: the model file measured is no longer at {model}")
            continue
        if model not in analyses:
            analyses[model] = analyze(model)
        a = analyses[model]
        target = b.target + (" (emulated)" if b.hello.get("emulated") else "")
        precision = a.scheme_detail + ("+xnnpack" if b.model_info.get("xnnpack") else "")
        measured.append(Measured(target, b.model, precision, b.threads, a.total_flops, s.invoke.median))
    return measured, skipped


def predict(analysis: ModelAnalysis, run: Path) -> Prediction:
    """The model of ``analysis`` predicted from every board of the run in directory ``run``.

    Raises ConfigError naming the run when it has no Invoke measurement to predict from.
    """
    measured, skipped = measured_from_run(run)
    if not measured:
        why = f" ({'; '.join(skipped[:3])})" if skipped else ""
        raise ConfigError(f"run {run.name!r} has no Invoke measurements to predict from{why}",
                          hint="run `harness run` first, or pass --predict-from RUN_ID")
    return Prediction(analysis.total_flops, tuple(throughputs(measured)), tuple(validate_predictions(measured)),
                      tuple(skipped))
