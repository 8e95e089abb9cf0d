"""Latency predicted before running, from what boards measured in stored runs.

Two methods, on the same data:

- **per op type** (harness.results.fit, the prediction): a rate per (op class, precision) and
  per-op costs, fitted on the whole-model times of benchmark runs and the per-layer times of
  profile runs (and of MCU firmware profilers), per board, thread count and XNNPACK setting;
  a model's prediction is the sum over its ops.
- **single rate** (``throughputs``, kept for comparison): a board's achieved throughput for one
  (precision, threads) is the FLOPs it ran per ns of measured Invoke (FLOPs/ns = GFLOP/s), and
  a model's prediction its FLOPs over it. It ignores what FLOPs alone do not capture (memory-bound
  depthwise layers, per-op overhead).

Both are validated leave-one-out: each measured model is predicted without any time or profile of
that model file (matched by sha256), and the error is (predicted - measured) / measured.

The precision of a single-rate group is the model's ``ModelAnalysis.scheme_detail`` (plus
``+xnnpack`` when the delegate was on), not the coarser contract ``scheme``: a weight-only int8
model runs float32 kernels and must not share a throughput with a dynamic-range int8 one. The
per-op fit uses each op's own precision. Emulated boards keep the label in their target name, so
an emulator's figures are never mistaken for a board's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.models.analysis import ModelAnalysis
from harness.results import fit as opfit
from harness.results.readings import Readings, fit_model, read_runs

METHOD = ("sum over ops of FLOPs / fitted rate per (op class, precision) + fitted per-op time, plus the "
          "Invoke's own time; per board, threads and XNNPACK (non-negative least squares on relative error)")
SINGLE_RATE_METHOD = "FLOPs / achieved FLOPs-per-ns of the board (per precision, threads)"


@dataclass(frozen=True)
class Measured:
    """One model's measured median Invoke on one board (``invoke_ns``, from the board's samples)."""

    target: str
    model: str
    precision: str  # the model's finer scheme (ModelAnalysis.scheme_detail), +xnnpack when it was on
    threads: int
    flops: int
    invoke_ns: float
    sha256: str = ""


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
    """Leave-one-out: ``model`` predicted from the board's other models (by the per-op fit when
    ``single_rate_ns`` is set beside it, else by the single rate alone), with what was extrapolated."""

    target: str
    model: str
    precision: str
    threads: int
    measured_ns: float
    predicted_ns: float
    single_rate_ns: float | None = None
    extrapolated: tuple[str, ...] = ()

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_ns - self.measured_ns) / self.measured_ns

    @property
    def single_rate_error(self) -> float | None:
        return None if self.single_rate_ns is None else (self.single_rate_ns - self.measured_ns) / self.measured_ns


def throughputs(measured: Sequence[Measured]) -> list[Throughput]:
    """Achieved throughput per (target, precision, threads): sum of FLOPs / sum of Invoke ns, so
    larger models weigh more and a microsecond-scale model cannot dominate."""
    groups: dict[tuple[str, str, int], list[Measured]] = {}
    for m in measured:
        if m.invoke_ns > 0 and m.flops > 0:
            groups.setdefault((m.target, m.precision, m.threads), []).append(m)
    return [Throughput(t, p, n, sum(m.flops for m in ms) / sum(m.invoke_ns for m in ms),
                       tuple(m.model for m in ms)) for (t, p, n), ms in groups.items()]


def _same_model(a: Measured, b: Measured) -> bool:
    return a is b or bool(a.sha256 and a.sha256 == b.sha256)


def validate_predictions(measured: Sequence[Measured]) -> list[PredictionCheck]:
    """Predict each measured model from the other models of its (target, precision, threads)
    group by the single rate; groups of one model cannot be validated and are left out."""
    checks = []
    for m in measured:
        others = [o for o in measured if not _same_model(o, m) and (o.target, o.precision, o.threads)
                  == (m.target, m.precision, m.threads)]
        fitted = throughputs(others)
        if fitted:
            checks.append(PredictionCheck(m.target, m.model, m.precision, m.threads, m.invoke_ns,
                                          fitted[0].predict_ns(m.flops)))
    return checks


@dataclass(frozen=True)
class BoardPrediction:
    """The model predicted on one group by the per-op fit, and the fit it came from."""

    fit: opfit.Fit
    estimate: opfit.Estimate

    def to_json(self) -> dict[str, Any]:
        f, e = self.fit, self.estimate
        return {"target": f.group.target, "threads": f.group.threads, "xnnpack": f.group.xnnpack,
                "predicted_ns": e.ns, "invoke_ns": f.invoke_ns,
                "per_op_ns": f.per_op_ns,
                "rates": [{"class": c, "precision": p, "gflops": _finite(f.gflops((c, p)))}
                          for c, p in sorted(f.ns_per_flop)],
                "breakdown": [{"class": p.cls, "precision": p.precision, "ops": p.ops, "flops": p.flops,
                               "ns": p.ns, "extrapolated": p.extrapolated} for p in e.parts],
                "extrapolated": list(e.extrapolated),
                "models": list(f.models), "profiles": list(f.profiles)}


def _finite(x: float) -> float | None:
    """JSON has no infinity: a rate whose ops cost no FLOP time is null."""
    return x if x != float("inf") else None


@dataclass(frozen=True)
class Prediction:
    """One model (of ``flops`` FLOPs) predicted on every group of the runs: by the per-op fit
    (``boards``), by the single rate (``throughputs``), the leave-one-out check of each measured
    model (``checks``, both methods side by side) and why anything stored was left out."""

    flops: int
    throughputs: tuple[Throughput, ...]
    checks: tuple[PredictionCheck, ...]
    skipped: tuple[str, ...]
    boards: tuple[BoardPrediction, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The ``prediction`` object of ``harness analyze --json`` (times in ns)."""
        return {
            "method": METHOD,
            "single_rate_method": SINGLE_RATE_METHOD,
            "boards": [b.to_json() for b in self.boards],
            "throughputs": [{"target": t.target, "precision": t.precision, "threads": t.threads,
                             "gflops": t.gflops, "models": list(t.models),
                             "predicted_ns": t.predict_ns(self.flops)} for t in self.throughputs],
            "validation": [{"target": c.target, "model": c.model, "precision": c.precision,
                            "threads": c.threads, "measured_ns": c.measured_ns,
                            "predicted_ns": c.predicted_ns, "error": c.error,
                            "single_rate_predicted_ns": c.single_rate_ns,
                            "single_rate_error": c.single_rate_error,
                            "extrapolated": list(c.extrapolated)} for c in self.checks],
            "skipped": list(self.skipped),
        }


def measured_of(readings: Readings) -> list[Measured]:
    """The whole-model times as the single rate reads them."""
    return [Measured(w.group.target, w.model.name, w.model.scheme + ("+xnnpack" if w.group.xnnpack else ""),
                     w.group.threads, w.model.flops, w.ns, w.model.sha256) for w in readings.wholes]


def measured_from_run(run: Path) -> tuple[list[Measured], list[str]]:
    """What the benchmark run in directory ``run`` measured, as Measured (median Invoke ns with the
    model's FLOPs), and why any benchmark was left out: no Invoke samples, or the model file
    measured is gone or changed (its sha256 no longer matches, so its FLOPs cannot be counted)."""
    readings = read_runs([run])
    return measured_of(readings), list(readings.skipped)


def checks_of(readings: Readings) -> list[PredictionCheck]:
    """Every measured model predicted leave-one-out by the per-op fit, its single-rate prediction beside it."""
    single = {(c.target, c.model, c.precision, c.threads): c.predicted_ns
              for c in validate_predictions(measured_of(readings))}
    checks = []
    for c in opfit.leave_one_out(readings.wholes, readings.layers):
        g = c.group
        precision = c.model.scheme + ("+xnnpack" if g.xnnpack else "")
        checks.append(PredictionCheck(g.target, c.model.name, precision, g.threads, c.measured_ns, c.estimate.ns,
                                      single.get((g.target, c.model.name, precision, g.threads)),
                                      c.estimate.extrapolated))
    return checks


def predict(analysis: ModelAnalysis, runs: Path | Sequence[Path]) -> Prediction:
    """The model of ``analysis`` predicted on every group measured in ``runs`` (run directories:
    benchmark runs and profile runs).

    Raises ConfigError naming the runs when none has an Invoke measurement or a profile to predict from.
    """
    paths = [runs] if isinstance(runs, Path) else list(runs)
    readings = read_runs(paths)
    if not readings.wholes and not readings.layers:
        why = f" ({'; '.join(readings.skipped[:3])})" if readings.skipped else ""
        names = ", ".join(repr(p.name) for p in paths)
        raise ConfigError(f"run {names} has no Invoke measurements or profiles to predict from{why}",
                          hint="run `harness run` (or `harness analyze MODEL --profile TARGET`) first, "
                               "or pass --predict-from RUN_ID")
    model = fit_model(analysis, analysis.path, "")
    groups = sorted({w.group for w in readings.wholes} | {p.group for p in readings.layers},
                    key=lambda g: (g.target, g.threads, g.xnnpack))
    boards = []
    for g in groups:
        fitted = opfit.fit(g, readings.wholes, readings.layers)
        boards.append(BoardPrediction(fitted, fitted.estimate(model)))
    return Prediction(analysis.total_flops, tuple(throughputs(measured_of(readings))),
                      tuple(checks_of(readings)), tuple(readings.skipped), tuple(boards))
