"""The report's sections on models and on comparisons: per-layer time from stored profiles, the
variants' latency, accuracy and size, and the comparisons with their uncertainty.

Comparisons are harness compare's own (harness.results.compare, .pairing; the table and lines of
harness.render.compare): between the runs given, the first as the baseline, or within one run by
board, threads or variant. A variant meets the base its recipe file names (harness.models.recipes),
and its speed-up is that comparison's, with its interval and test.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.render import plots
from harness.render.analysis import profile_lines, profile_row_text, profile_title
from harness.render.compare import comparison_grid, context, label, ordered, refusal, sentence
from harness.render.grid import Column, Grid, Row, cell, name
from harness.render.report_model import Figure, Material, Section, StoredRun
from harness.render.variants import comparison_grids, comparison_notes
from harness.results import pairing
from harness.results.compare import Pair, Side, compare
from harness.results.layers import LayerProfile, LayerRow
from harness.results.variants import Judged

TOP = 10
DASH = "–"


def layers_section(m: Material, top: int = TOP) -> Section:
    """Each stored profile's heaviest rows (an op, or an XNNPACK partition) with the sum check, its
    SE and why the rounds stopped: what `harness analyze --profile` and `harness show` print
    (harness.render.analysis), as a table and a figure of time share against FLOPs share."""
    profiled = [r.profile for _, r in m.profiles if r.profile is not None]
    if not profiled:
        return Section("layers", "Per-layer time", notes=(
            "no profile run among the runs given: `harness analyze MODEL --profile TARGET` makes one; "
            "pass its id to harness report with the benchmark runs",))
    tables, figures = [], []
    for n, p in enumerate(profiled, 1):
        rows = p.heaviest_rows(top)
        tables.append((f"t-layers-{n}", _layers_grid(p, rows, f"p{n}")))
        bars = [plots.Bars(_row_key(f"p{n}", row), row.label() if row.fused else f"{row.first} {row.label()}",
                           {"time": 100 * _time_share(p, row),
                            "flops": None if row.flops_share is None else 100 * row.flops_share},
                           frozenset() if row.resolved else frozenset({"time"})) for row in rows]
        figures.append(Figure(f"layers-{n}", plots.paired_bars(
            f"layers-{n}", bars, (("time", "share of the rows' time"), ("flops", "share of the model's FLOPs")),
            "% of the model"), f"The {len(bars)} heaviest rows of {p.model.rsplit('/', 1)[-1]} on {p.target}: "
            "time share against FLOPs share; hatched: below resolution, drawn to the upper end of its 95 % "
            "interval", f"t-layers-{n}", (("time", ()), ("flops", ("flops_share",)))))
    return Section("layers", "Per-layer time", intro=(
        "From stored profile runs, recomputed from their raw rounds (harness.results.layers), as `harness "
        "show` prints them: one row per op, or per XNNPACK partition when the delegate fused ops. A row "
        "whose time share is far above its FLOPs share is slower per FLOP than the model's average: the "
        "place to look first. A row below resolution (its 95 % interval reaches zero) reads \"< x\".",),
        tables=tuple(tables), figures=tuple(figures))


def _row_key(prefix: str, row: LayerRow) -> str:
    return f"{prefix}-op{row.first}" + (f"-{row.last}" if row.last > row.first else "")


def _time_share(p: LayerProfile, row: LayerRow) -> float:
    """The row's share of the rows' time; below resolution, the share its interval's upper end
    would have (at most this), 0 when even that is not above zero."""
    if row.resolved or row.interval_ns is None:
        return row.time_share
    return max(row.interval_ns[1], 0.0) / p.sum_ns if p.sum_ns > 0 else 0.0


LAYER_COLUMNS = (Column("op", "#"), Column("type", "Op", "left"), Column("time", "Time"),
                 Column("interval", "95 % interval"), Column("time_share", "Time %"),
                 Column("flops_share", "FLOPs %"), Column("ratio", "Time/FLOPs"))


def _layers_grid(p: LayerProfile, rows: Sequence[LayerRow], prefix: str) -> Grid:
    """The rows as the terminal's profile table has them (harness.render.analysis), with its lines
    (the sum check with its SE, the stop reason, the notes) as the legend."""
    cells = []
    for row in rows:
        t = profile_row_text(row)
        cells.append(Row((cell(t.index), name(t.label), cell(t.time), cell(t.interval or DASH), cell(t.share),
                          cell(t.flops_share), cell(t.ratio or DASH)),
                         None if t.resolved else "dim", _row_key(prefix, row)))
    legend = (*profile_lines(p), f"run {p.run_id}, method: {p.method}")
    return Grid(LAYER_COLUMNS, tuple(cells), profile_title(p, len(rows)), legend)


def variants_section(m: Material) -> Section:
    """Each benchmark run's variants judged against their bases (harness.results.variants, as
    `harness run` and `harness show` judge them), in the per-board tables of the terminal
    (harness.render.variants), and one scatter of them all."""
    tables: list[tuple[str, Grid]] = []
    points: list[plots.Point] = []
    notes: list[str] = []
    keys = {id(e.summary): e.key for e in m.entries}
    for run in m.benchmark_runs():
        entries = m.of(run)
        judged = m.variants(run).judge_all([e.summary for e in entries])
        for grid in comparison_grids(judged, run.run_id, lambda j: keys[id(j.summary)]):
            tables.append((f"t-variants-{len(tables) + 1}", grid))
        notes += [line.plain for line in comparison_notes(judged)]
        points += [_point(keys[id(j.summary)], j) for j in judged if j.role is not None and _point_of(j)]
    if not tables:
        return Section("variants", "Variants: latency, accuracy and size", notes=(
            "no variants in these runs: `harness quantize MODEL` makes them, and `harness run --variants DIR` "
            "(or --model with each variant and its base) benchmarks them beside their float32 base",))
    marks = (("size", ("invoke", "size")), ("accuracy", ("invoke", "accuracy")))
    figures = tuple(Figure(f"tradeoff-{n}" if n > 1 else "tradeoff", plots.tradeoff(
        [p for p in points if p.key in {r.key for r in grid.rows}], f"tradeoff-{n}" if n > 1 else "tradeoff"),
        f"{grid.title}: Invoke median against model size (left) and top-1 accuracy on the board (right); "
        "x: a collapsed variant", table_id, marks) for n, (table_id, grid) in enumerate(tables, 1))
    return Section("variants", "Variants: latency, accuracy and size", intro=(
        "Which variant of a model should run on which board, and what it costs in accuracy: each variant "
        "against its float32 base on the same board (the tables of `harness run --variants`).",),
        tables=tuple(tables), figures=figures, notes=tuple(notes))


def _point_of(j: Judged) -> bool:
    s = j.summary
    return s.invoke is not None and bool(s.invoke.median) and j.unsupported is None


def _point(key: str, j: Judged) -> plots.Point:
    s, b = j.summary, j.summary.benchmark
    assert s.invoke is not None
    label = j.variant.name if j.variant else "base"
    return plots.Point(key, label, b.target, s.invoke.median, b.model_facts.get("size_bytes"),
                       s.accuracy.top1 if s.accuracy else None, j.collapse is not None)


def comparison_pairs(m: Material, by: str | None, streams: bool = False) -> tuple[list[Pair], list[str]]:
    """Between the benchmark runs given (the first the baseline), or with ``by`` or a single run,
    within each run: by board when it has several targets, else threads, else variant. With
    ``streams``, the same among the stream runs given (harness compare pairs streams so too)."""
    runs = [r for r in (m.stream_runs() if streams else m.benchmark_runs()) if r.benchmarks]
    what = "stream" if streams else "benchmark"

    def of(run: StoredRun, recipes: bool = False) -> list[Side]:
        return m.stream_sides(run) if streams else m.sides(run, recipes)

    pairs: list[Pair] = []
    notes: list[str] = []
    if len(runs) > 1 and by is None:
        pairs, notes = pairing.across_runs(of(runs[0]), [of(r) for r in runs[1:]])
        if pairs:
            return pairs, notes
        notes.append(f"the {what} runs share no {what}: each is compared within itself")
    for run in runs:
        chosen = by or _auto_by(of(run))
        if chosen is None:
            notes.append(f"run {run.run_id}: one {what}, nothing to compare it with")
            continue
        got, said = pairing.within(of(run, recipes=chosen == "variant"), chosen)
        pairs += got
        notes += said
    return pairs, notes


def _auto_by(sides: Sequence[Side]) -> str | None:
    for by, field in (("board", "target"), ("threads", "threads"), ("variant", "model_sha256")):
        if len({getattr(s.benchmark, field) for s in sides}) > 1:
            return by
    return None


def _comparisons(m: Material, by: str | None, metric: str, streams: bool
                 ) -> tuple[list[tuple[str, Grid]], list[Figure], list[str], list[str]]:
    """The table, figure, sentences and notes of the benchmark (or stream) comparisons."""
    pairs, notes = comparison_pairs(m, by, streams)
    if not pairs:
        return [], [], [], notes
    comparisons = ordered([compare(p, "latency" if streams else metric) for p in pairs])
    prefix, suffix = ("sc", "-streams") if streams else ("c", "")
    keys = [f"{prefix}{n}" for n in range(1, len(comparisons) + 1)]
    grid = comparison_grid(comparisons).with_keys(keys)
    ratios = [plots.Ratio(k, f"{context(c)}: {label(c, c.pair.candidate)} vs {label(c, c.pair.baseline)}",
                          c.ratio, c.ratio_ci, c.verdict) for k, c in zip(keys, comparisons, strict=True)
              if c.ratio is not None]
    lines = [sentence(c).plain if not c.refused else refusal(c) for c in comparisons]
    what = "streams' latency from the schedule, " if streams else ""
    figures = [Figure(f"comparison{suffix}", plots.comparison(ratios), f"Candidate / baseline ({what}95 % "
                      "interval, log scale): left of the line faster, right slower", f"t-comparison{suffix}",
                      (("ratio", ("ratio",)),))] if ratios else []
    return [(f"t-comparison{suffix}", grid)], figures, lines, notes


def comparison_section(m: Material, by: str | None = None, metric: str = "invoke") -> Section:
    tables, figures, lines, notes = _comparisons(m, by, metric, streams=False)
    if m.stream_runs():
        more = _comparisons(m, by, metric, streams=True)
        tables, figures, lines, notes = tables + more[0], figures + more[1], lines + more[2], notes + more[3]
    if not tables:
        return Section("comparison", "Comparisons", notes=(*notes, "nothing to compare: give two runs, or a run "
                                                            "of several boards, thread counts or models"))
    return Section("comparison", "Comparisons, with their uncertainty", intro=(
        "harness compare's verdicts: tested on block medians (or run medians with --processes), never on "
        "raw samples, which are correlated within a run; streams on the medians of each tenth of their "
        "schedule.",), tables=tuple(tables), figures=tuple(figures), lines=tuple(lines), notes=tuple(notes))
