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
from harness.render.analysis import human_count
from harness.render.compare import comparison_grid, context, label, ordered, refusal, sentence
from harness.render.grid import Column, Grid, Row, cell, name
from harness.render.report_model import Entry, Figure, Material, Section, StoredRun
from harness.render.table import duration, percent
from harness.render.variants import comparison_grids, comparison_notes
from harness.results import pairing
from harness.results.compare import Pair, compare
from harness.results.layers import LayerProfile
from harness.results.variants import Judged

TOP = 10
DASH = "–"


def layers_section(m: Material, top: int = TOP) -> Section:
    profiled = [r.profile for _, r in m.profiles if r.profile is not None]
    if not profiled:
        return Section("layers", "Per-layer time", notes=(
            "no profile run among the runs given: `harness analyze MODEL --profile TARGET` makes one; "
            "pass its id to harness report with the benchmark runs",))
    tables, figures = [], []
    for n, p in enumerate(profiled, 1):
        grid = _layers_grid(p, top, f"p{n}")
        tables.append((f"t-layers-{n}", grid))
        bars = [plots.Bars(f"p{n}-op{layer.index}", f"{layer.index} {layer.type}",
                           {"time": 100 * layer.time_share,
                            "flops": None if layer.flops_share is None else 100 * layer.flops_share})
                for layer in p.heaviest(top)]
        figures.append(Figure(f"layers-{n}", plots.paired_bars(
            f"layers-{n}", bars, (("time", "share of the layers' time"), ("flops", "share of the model's FLOPs")),
            "% of the model"), f"The {len(bars)} heaviest layers of {p.model.rsplit('/', 1)[-1]} on {p.target}: "
            "time share against FLOPs share", f"t-layers-{n}", (("time", ()), ("flops", ("flops_share",)))))
    return Section("layers", "Per-layer time", intro=(
        "From stored profile runs, recomputed from their raw rounds (harness.results.layers). A layer "
        "whose time share is far above its FLOPs share is slower per FLOP than the model's average: "
        "the place to look first.",), tables=tuple(tables), figures=tuple(figures))


def _layers_grid(p: LayerProfile, top: int, prefix: str) -> Grid:
    columns = (Column("op", "Op"), Column("type", "Type", "left"), Column("time", "Time"),
               Column("time_share", "Time share"), Column("flops", "FLOPs"), Column("flops_share", "FLOPs share"),
               Column("gflops", "GFLOP/s"))
    rows = [Row((cell(str(layer.index)), name(layer.type), cell(duration(layer.ns)), cell(percent(layer.time_share)),
                 cell(human_count(layer.flops) if layer.flops is not None else DASH),
                 cell(percent(layer.flops_share) if layer.flops_share is not None else DASH),
                 cell(f"{layer.flops / layer.ns:.3g}" if layer.flops and layer.ns > 0 else DASH)),
                key=f"{prefix}-op{layer.index}") for layer in p.heaviest(top)]
    model = p.model.rsplit("/", 1)[-1]
    se = f" ± {100 * p.sum_check_se:.1f} %" if p.sum_check_se == p.sum_check_se else ""
    legend = (f"{len(p.layers)} layers; overhead {duration(p.overhead_ns)} + layers {duration(p.sum_ns)} vs whole "
              f"model {duration(p.whole_ns)}: sum check {100 * p.sum_check:+.1f} %{se}", f"method: {p.method}, clock "
              f"{p.clock}; run {p.run_id}", *p.notes)
    title = (f"{model} on {p.target} ({p.runtime}, {p.threads} thread{'s' if p.threads > 1 else ''}, "
             f"XNNPACK {'on' if p.xnnpack else 'off'}): the {len(rows)} heaviest layers")
    return Grid(columns, tuple(rows), title, legend)


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


def comparison_pairs(m: Material, by: str | None) -> tuple[list[Pair], list[str]]:
    """Between the benchmark runs given (the first the baseline), or with ``by`` or a single run,
    within each run: by board when it has several targets, else threads, else variant."""
    runs = [r for r in m.benchmark_runs() if r.benchmarks]
    pairs: list[Pair] = []
    notes: list[str] = []
    if len(runs) > 1 and by is None:
        pairs, notes = pairing.across_runs(m.sides(runs[0]), [m.sides(r) for r in runs[1:]])
        if pairs:
            return pairs, notes
        notes.append("the runs share no benchmark: each is compared within itself")
    for run in runs:
        chosen = by or _auto_by(m.of(run))
        if chosen is None:
            notes.append(f"run {run.run_id}: one benchmark, nothing to compare it with")
            continue
        got, said = pairing.within(m.sides(run, recipes=chosen == "variant"), chosen)
        pairs += got
        notes += said
    return pairs, notes


def _auto_by(entries: Sequence[Entry]) -> str | None:
    for by, field in (("board", "target"), ("threads", "threads"), ("variant", "model_sha256")):
        if len({getattr(e.summary.benchmark, field) for e in entries}) > 1:
            return by
    return None


def comparison_section(m: Material, by: str | None = None, metric: str = "invoke") -> Section:
    pairs, notes = comparison_pairs(m, by)
    if not pairs:
        return Section("comparison", "Comparisons", notes=(*notes, "nothing to compare: give two runs, or a run "
                                                            "of several boards, thread counts or models"))
    comparisons = ordered([compare(p, metric) for p in pairs])
    keys = [f"c{n}" for n in range(1, len(comparisons) + 1)]
    grid = comparison_grid(comparisons).with_keys(keys)
    ratios = [plots.Ratio(k, f"{context(c)}: {label(c, c.pair.candidate)} vs {label(c, c.pair.baseline)}",
                          c.ratio, c.ratio_ci, c.verdict) for k, c in zip(keys, comparisons, strict=True)
              if c.ratio is not None]
    lines = tuple(sentence(c).plain if not c.refused else refusal(c) for c in comparisons)
    figures = (Figure("comparison", plots.comparison(ratios), "Candidate / baseline with its 95 % interval (log "
                      "scale): left of the line faster, right slower", "t-comparison", (("ratio", ("ratio",)),)),
               ) if ratios else ()
    return Section("comparison", "Comparisons, with their uncertainty", intro=(
        "harness compare's verdicts: tested on block medians (or run medians with --processes), never on "
        "raw samples, which are correlated within a run.",), tables=(("t-comparison", grid),),
        figures=figures, lines=lines, notes=tuple(notes))


def stream_note(runs: Sequence[StoredRun]) -> Section | None:
    """Runs of kinds this report does not show yet (stream and soak: issue 12) are named."""
    other = [r for r in runs if r.kind not in ("benchmark", "profile")]
    if not other:
        return None
    return Section("streams", "Streams and soak", notes=tuple(
        f"run {r.run_id} is a {r.kind} run: this harness does not draw {r.kind} runs yet" for r in other))
