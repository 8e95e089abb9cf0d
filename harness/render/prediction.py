"""Human rendering of a latency prediction (harness.results.prediction): the predicted Invoke per
board, where its time goes by op class and precision, what was extrapolated, and the
leave-one-out table of both methods side by side. Returns rich renderables and never prints.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table

from harness.models.analysis import ModelAnalysis
from harness.render.analysis import human_count, human_ns
from harness.render.text import plain
from harness.results.prediction import BoardPrediction, Prediction, PredictionCheck


def _board_checks(b: BoardPrediction, checks: Sequence[PredictionCheck]) -> list[PredictionCheck]:
    g = b.fit.group
    return [c for c in checks if (c.target, c.threads, c.precision.endswith("+xnnpack"))
            == (g.target, g.threads, g.xnnpack)]


def _median_abs(errors: Sequence[float | None]) -> float | None:
    known = [abs(e) for e in errors if e is not None]
    return statistics.median(known) if known else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def prediction_table(a: ModelAnalysis, p: Prediction) -> Table:
    """The model's predicted Invoke on each board (per-op fit, and the single rate beside it), with
    each board's median absolute leave-one-out error by both methods."""
    table = Table(title=plain(f"{a.path}: {human_count(a.total_flops)} FLOPs, {len(a.ops)} ops, predicted "
                              "per board from per-op-type rates"), title_justify="left")
    for name in ("target", "threads", "XNNPACK", "predicted", "single rate", "fitted on", "LOO |error|",
                 "single rate LOO"):
        table.add_column(name, justify="left" if name in ("target", "fitted on") else "right")
    for b in p.boards:
        g, checks = b.fit.group, _board_checks(b, p.checks)
        single = [t for t in p.throughputs if (t.target, t.threads, t.precision)
                  == (g.target, g.threads, a.scheme_detail + ("+xnnpack" if g.xnnpack else ""))]
        note = " *" if b.estimate.extrapolated else ""
        table.add_row(plain(g.target), str(g.threads), "on" if g.xnnpack else "off", human_ns(b.estimate.ns) + note,
                      human_ns(single[0].predict_ns(a.total_flops)) if single else "n/a",
                      f"{len(b.fit.models)} runs, {len(b.fit.profiles)} profiles",
                      f"{_pct(_median_abs([c.error for c in checks]))} ({len(checks)})" if checks else "n/a",
                      _pct(_median_abs([c.single_rate_error for c in checks])) if checks else "n/a")
    return table


def breakdown_table(b: BoardPrediction, top: int = 10) -> Table:
    """Where the predicted time goes on one board: the heaviest (class, precision) parts."""
    e, f = b.estimate, b.fit
    table = Table(title=plain(f"where the predicted {human_ns(e.ns)} goes on {f.group.label()}: "
                              f"Invoke itself {human_ns(e.invoke_ns)}, then the heaviest {min(top, len(e.parts))} "
                              f"of {len(e.parts)} op kinds"), title_justify="left")
    for name in ("op class", "precision", "ops", "FLOPs", "GFLOP/s", "per op", "time", "share"):
        table.add_column(name, justify="left" if name in ("op class", "precision") else "right")
    for part in e.parts[:top]:
        key = (part.cls, part.precision)
        rate = ("" if not part.flops else "extrapolated" if part.extrapolated or key not in f.ns_per_flop
                else "∞" if f.ns_per_flop[key] == 0 else f"{f.gflops(key):.3g}")
        per_op = f.per_op_ns.get(part.cls)
        table.add_row(part.cls, plain(part.precision), str(part.ops), human_count(part.flops) if part.flops else "0",
                      rate, human_ns(per_op) if per_op is not None else "extrapolated", human_ns(part.ns),
                      f"{100 * part.ns / e.ns:.0f} %" if e.ns else "", style="yellow" if part.extrapolated else None)
    return table


def prediction_lines(b: BoardPrediction) -> list[str]:
    """What the board's prediction extrapolated, and the XNNPACK caveat, as plain lines."""
    lines = [f"extrapolated: {note}" for note in b.estimate.extrapolated]
    if b.fit.group.xnnpack and b.fit.profiles:
        lines.append("XNNPACK on: profiles are fitted as measured; ops the delegate fuses are split at prefix "
                     "boundaries, so their per-op times are approximate (the whole-model times are not)")
    return lines


def validation_table(checks: Sequence[PredictionCheck]) -> Table:
    """Each measured model predicted without its own runs and profiles (leave-one-out), by the
    per-op fit and by the single rate."""
    table = Table(title="prediction error per board (each model predicted without its own runs and profiles)",
                  title_justify="left")
    for name in ("target", "model", "precision", "threads", "measured", "predicted", "error", "single rate"):
        table.add_column(name, justify="left" if name in ("target", "model", "precision") else "right")
    for c in sorted(checks, key=lambda c: (c.target, c.precision.endswith("+xnnpack"), c.threads, c.model)):
        single = c.single_rate_error
        table.add_row(plain(c.target), plain(c.model), plain(c.precision), str(c.threads), human_ns(c.measured_ns),
                      human_ns(c.predicted_ns) + (" *" if c.extrapolated else ""), f"{100 * c.error:+.0f} %",
                      "n/a" if single is None else f"{100 * single:+.0f} %")
    return table


def prediction_renderables(a: ModelAnalysis, p: Prediction, top: int = 10) -> list[RenderableType]:
    """Everything `harness analyze --predict-from` prints, in order."""
    out: list[RenderableType] = [prediction_table(a, p)]
    for b in p.boards:
        out.append(Group(breakdown_table(b, top), *(plain(line) for line in prediction_lines(b))))
    if p.checks:
        out.append(validation_table(p.checks))
        if any(c.extrapolated for c in p.checks):
            out.append(plain("*: extrapolated (an op class or precision its board never ran without this model); "
                             "--json lists what, under validation[].extrapolated"))
    return out
