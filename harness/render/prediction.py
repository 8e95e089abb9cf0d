"""Human rendering of a latency prediction (harness.results.prediction): the predicted Invoke per
board, where its time goes by op class and precision, what was extrapolated, and the
leave-one-out table of both methods side by side. Tables are Grids (harness.render.grid) laid out
by harness.render.terminal to the width asked for (100 columns into a pipe): names wrap, figures
never break. Returns rich renderables and never prints.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text

from harness.models.analysis import ModelAnalysis
from harness.render import terminal
from harness.render.analysis import human_count, human_ns
from harness.render.grid import Column, Grid, Row, cell, name
from harness.render.text import visible
from harness.results.prediction import BoardPrediction, Prediction, PredictionCheck

EXTRAPOLATED_MARK = "*"
EXTRAPOLATED_NOTE = ("* extrapolated: an op class or precision its board never ran (without this model); "
                     "--json lists what")

BOARD_COLUMNS = (
    Column("target", "Target", "left", repeat=True, shrink=1),
    Column("threads", "Threads", repeat=True, shrink=8),
    Column("xnnpack", "XNNPACK", shrink=8),
    Column("predicted", "Predicted", shrink=9),
    Column("single", "Single rate", shrink=7),
    Column("fitted_on", "Fitted on", "left", shrink=2),
    Column("loo", "LOO |error| (models)", shrink=6),
    Column("single_loo", "Single rate LOO", shrink=6),
)
PART_COLUMNS = (
    Column("class", "Op class", "left", repeat=True, shrink=3),
    Column("precision", "Precision", "left", repeat=True, shrink=3),
    Column("ops", "Ops", shrink=8),
    Column("flops", "FLOPs", shrink=7),
    Column("gflops", "GFLOP/s", shrink=7),
    Column("time", "Time", shrink=9),
    Column("share", "Share", shrink=8),
)
CHECK_COLUMNS = (
    Column("target", "Target", "left", repeat=True, shrink=1),
    Column("model", "Model", "left", repeat=True, shrink=0),
    Column("precision", "Precision", "left", shrink=2),
    Column("threads", "Threads", shrink=8),
    Column("measured", "Measured", shrink=9),
    Column("predicted", "Predicted", shrink=9),
    Column("error", "Error", shrink=9),
    Column("single", "Single rate", shrink=7),
)


def _board_checks(b: BoardPrediction, checks: Sequence[PredictionCheck]) -> list[PredictionCheck]:
    g = b.fit.group
    return [c for c in checks if (c.target, c.threads, c.precision.endswith("+xnnpack"))
            == (g.target, g.threads, g.xnnpack)]


def median_abs(errors: Sequence[float | None]) -> float | None:
    """The median of |error| over the known ones (None when none is)."""
    known = [abs(e) for e in errors if e is not None]
    return statistics.median(known) if known else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def prediction_grid(a: ModelAnalysis, p: Prediction) -> Grid:
    """The model's predicted Invoke on each board (per-op fit, and the single rate beside it), with
    each board's median absolute leave-one-out error by both methods."""
    rows = []
    for b in p.boards:
        g, checks = b.fit.group, _board_checks(b, p.checks)
        single = [t for t in p.throughputs if (t.target, t.threads, t.precision)
                  == (g.target, g.threads, a.scheme_detail + ("+xnnpack" if g.xnnpack else ""))]
        rows.append(Row((
            name(g.target), cell(str(g.threads)), cell("on" if g.xnnpack else "off"),
            cell(human_ns(b.estimate.ns), EXTRAPOLATED_MARK if b.estimate.extrapolated else ""),
            cell(human_ns(single[0].predict_ns(a.total_flops)) if single else "n/a"),
            cell(f"{len(b.fit.models)} runs, ", f"{len(b.fit.profiles)} profiles"),
            cell(f"{_pct(median_abs([c.error for c in checks]))} ({len(checks)})" if checks else "n/a"),
            cell(_pct(median_abs([c.single_rate_error for c in checks])) if checks else "n/a"))))
    title = (f"{visible(str(a.path))}: {human_count(a.total_flops)} FLOPs, {len(a.ops)} ops, predicted per board "
             "from per-op-type rates")
    legend = (EXTRAPOLATED_NOTE,) if any(b.estimate.extrapolated for b in p.boards) else ()
    return Grid(BOARD_COLUMNS, tuple(rows), title, legend)


def breakdown_grid(b: BoardPrediction, top: int = 10) -> Grid:
    """Where the predicted time goes on one board: the heaviest (class, precision) parts."""
    e, f = b.estimate, b.fit
    rows = []
    for part in e.parts[:top]:
        key = (part.cls, part.precision)
        rate = ("" if not part.flops else "extrapolated" if part.extrapolated or key not in f.ns_per_flop
                else "∞" if f.ns_per_flop[key] == 0 else f"{f.gflops(key):.3g}")
        rows.append(Row((
            cell(part.cls), name(part.precision), cell(str(part.ops)),
            cell(human_count(part.flops) if part.flops else "0"), cell(rate), cell(human_ns(part.ns)),
            cell(f"{100 * part.ns / e.ns:.0f} %" if e.ns else "")), style="yellow" if part.extrapolated else None))
    title = (f"where the predicted {human_ns(e.ns)} goes on {visible(f.group.label())}: Invoke itself "
             f"{human_ns(e.invoke_ns)}, {human_ns(f.per_op_ns)} per op, then the heaviest {min(top, len(e.parts))} of {len(e.parts)} op kinds")
    return Grid(PART_COLUMNS, tuple(rows), title, tuple(prediction_lines(b)))


def prediction_lines(b: BoardPrediction) -> list[str]:
    """What the board's prediction extrapolated, and the XNNPACK caveat, as plain lines."""
    lines = [f"extrapolated: {note}" for note in b.estimate.extrapolated]
    if b.fit.group.xnnpack and b.fit.profiles:
        lines.append("XNNPACK on: profiles are fitted as measured; ops the delegate fuses are split at prefix "
                     "boundaries, so their per-op times are approximate (the whole-model times are not)")
    return lines


def validation_grid(checks: Sequence[PredictionCheck]) -> Grid:
    """Each measured model predicted without its own runs and profiles (leave-one-out), by the
    per-op fit and by the single rate."""
    rows = []
    for c in sorted(checks, key=lambda c: (c.target, c.precision.endswith("+xnnpack"), c.threads, c.model)):
        single = c.single_rate_error
        rows.append(Row((
            name(c.target), name(c.model), name(c.precision), cell(str(c.threads)), cell(human_ns(c.measured_ns)),
            cell(human_ns(c.predicted_ns), EXTRAPOLATED_MARK if c.extrapolated else ""),
            cell(f"{100 * c.error:+.0f} %"), cell("n/a" if single is None else f"{100 * single:+.0f} %"))))
    legend = (EXTRAPOLATED_NOTE.replace("--json lists what", "--json lists what, under validation[].extrapolated"),) \
        if any(c.extrapolated for c in checks) else ()
    return Grid(CHECK_COLUMNS, tuple(rows), "prediction error per board (each model predicted without its own runs "
                "and profiles)", legend)


def _shown(g: Grid, width: int | None) -> list[RenderableType]:
    return [*terminal.render(g, width), *(Text(line) for line in g.legend)]


def prediction_renderables(a: ModelAnalysis, p: Prediction, top: int = 10,
                           width: int | None = 100) -> list[RenderableType]:
    """Everything `harness analyze --predict-from` prints, in order, laid out for ``width`` cells."""
    out = _shown(prediction_grid(a, p), width)
    for b in p.boards:
        out += _shown(breakdown_grid(b, top), width)
    if p.checks:
        out += _shown(validation_grid(p.checks), width)
    return out

