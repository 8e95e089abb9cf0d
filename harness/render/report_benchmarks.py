"""The report's sections on benchmarks: the results table, latency distributions, the bottleneck
picture, and throughput per watt and per dollar. Each row of a table is one benchmark, keyed by
its Entry's key, and each figure marks the same keys (harness.render.plots).

Energy and cost are the energy table of `harness run` (harness.render.energy over the summary's
harness.results.energy figures): the power measured on the board by its power reader, else the
power targets.toml declares, each row saying which (``measured`` or ``declared``); energy per
inference and per loop; inferences per second per dollar (``ips_per_usd``: loops per second with
Invoke over the declared price), under the terminal's names.
"""

from __future__ import annotations

from harness import stats
from harness.render import plots
from harness.render.energy import energy_grid, energy_rows, has_figures
from harness.render.grid import Column, Grid, Row, cell, name, words
from harness.render.report_model import Entry, Figure, Material, Section
from harness.render.table import duration, results_grid
from harness.results.summary import advice, share_text, speedup

DASH = "–"
KEYS = (Column("target", "Target", "left", repeat=True), Column("model", "Model", "left", repeat=True),
        Column("threads", "Thr", repeat=True))


def _keys(e: Entry) -> tuple:
    b = e.summary.benchmark
    return name(b.target + ("*" if b.emulated else "")), name(b.model), cell(str(b.threads))


def results_section(m: Material) -> Section:
    tables = []
    for n, run in enumerate(m.benchmark_runs(), 1):
        entries = m.of(run)
        grid = results_grid([e.summary for e in entries], f"harness run {run.run_id}")
        tables.append((f"t-results-{n}", grid.with_keys([e.key for e in entries])))
    return Section("results", "Results", intro=(
        "The results table of `harness run` / `harness show`, every column: medians over the raw "
        "samples, Invoke ± its median absolute deviation, the inference share with its 95 % interval "
        "from the ABBA blocks.",), tables=tuple(tables))


def latency_section(m: Material) -> Section:
    entries = [e for e in m.entries if e.summary.benchmark.stage("invoke")]
    if not entries:
        return Section("latency", "Latency distributions", notes=("no benchmark with Invoke samples",))
    rows, dists = [], []
    columns = (*KEYS, Column("n", "Samples"), Column("blocks", "Blocks"), Column("p1", "p1"), Column("q1", "p25"),
               Column("median", "Median"), Column("q3", "p75"), Column("p99", "p99"), Column("max", "Max"))
    for e in entries:
        b = e.summary.benchmark
        samples = b.stage("invoke")
        medians = _block_medians(e)
        figures = [stats.percentile(samples, q) for q in (1, 25, 50, 75, 99)]
        rows.append(Row((*_keys(e), cell(f"{len(samples):,}"), cell(str(len(medians))),
                         *(cell(duration(x)) for x in figures), cell(duration(max(samples)))), key=e.key))
        dists.append(plots.Distribution(e.key, e.label, samples, medians))
    grid = Grid(columns, tuple(rows), "Invoke time, raw samples (with-Invoke blocks)",
                ("percentiles of every raw Invoke sample, all blocks and processes pooled",))
    fig = Figure("latency", plots.latency(dists), "Invoke time per benchmark: box p25–p75 with the median, "
                 "whiskers p1–p99 of the raw samples; dots: each block's median (what harness compare tests)",
                 "t-latency", (("box", ()), ("whiskers", ()), ("median", ()), ("blocks", ())))
    return Section("latency", "Latency distributions", intro=(
        "Every raw Invoke sample the boards sent, per board and model. Block medians show what moves "
        "between blocks (drift, heat, other programs); a spread inside a block is noise.",),
        tables=(("t-latency", grid),), figures=(fig,))


def _block_medians(e: Entry) -> list[float]:
    groups: dict[tuple[int, int], list[int]] = {}
    for blk in e.summary.benchmark.blocks:
        if blk.mode == "with" and blk.stages.get("invoke"):
            groups.setdefault((blk.process, blk.index), []).extend(blk.stages["invoke"])
    return [stats.median(v) for v in groups.values()]


def bottleneck_section(m: Material) -> Section:
    entries = [e for e in m.entries if e.summary.inference_share is not None and e.summary.with_invoke
               and e.summary.without_invoke]
    if not entries:
        return Section("bottleneck", "Is inference the bottleneck?", notes=("no benchmark with samples of both modes",))
    columns = (*KEYS, Column("with", "Loop with Invoke"), Column("without", "Loop w/o Invoke"),
               Column("invoke", "Invoke"), Column("share", "Inference share"), Column("bound", "Max loop speed-up"),
               Column("advice", "What it means", "left"))
    rows, splits = [], []
    for e in entries:
        s = e.summary
        assert s.with_invoke and s.without_invoke and s.inference_share is not None
        rows.append(Row((*_keys(e), cell(duration(s.with_invoke.median)), cell(duration(s.without_invoke.median)),
                         cell(duration(s.invoke.median) if s.invoke else DASH),
                         cell(share_text(s.inference_share, s.inference_share_ci)),
                         cell(speedup(s.max_speedup_from_model) if s.max_speedup_from_model else DASH),
                         words(advice(s.inference_share, s.max_speedup_from_model))), key=e.key))
        splits.append(plots.Split(e.key, e.label, s.with_invoke.median, s.without_invoke.median, s.inference_share))
    grid = Grid(columns, tuple(rows), "The loop with and without Invoke (medians)",
                ("inference share = 1 - loop without / loop with Invoke; max loop speed-up = with / without "
                 "(Amdahl: an infinitely fast model)",))
    fig = Figure("bottleneck", plots.bottleneck(splits), "Each loop with Invoke as 100 %: the loop without Invoke "
                 "(grey) and what Invoke adds (blue)", "t-bottleneck", (("rest", ()), ("invoke", ())))
    return Section("bottleneck", "Is inference the bottleneck?", intro=(
        "Each benchmark runs the application's loop with and without Invoke, in alternating blocks. "
        "The part Invoke adds is the most a faster model (or board) can save.",),
        tables=(("t-bottleneck", grid),), figures=(fig,))


def efficiency_section(m: Material) -> Section:
    """The energy table of `harness run` and `harness show` (harness.render.energy), every column,
    one row per benchmark keyed as elsewhere in the report: the same figures under the same names
    as the terminal and ``--json`` (``energy``, ``cost.ips_per_usd``), and a figure of two of them."""
    entries = [e for e in m.entries if has_figures(e.summary)]
    grid = energy_grid([e.summary for e in entries], "Energy and cost")
    if grid is None:
        return Section("efficiency", "Throughput per watt and per dollar", notes=(
            "no target of these runs has a power reader, power_w or price_usd: add them to its "
            "[targets.NAME] in targets.toml (they are stored with the next run)",))
    rows = energy_rows([e.summary for e in entries])
    bars = [plots.Bars(e.key, e.label, {"inference": r["per_inference_mj"], "ips_per_usd": r["ips_per_usd"]})
            for e, r in zip(entries, rows, strict=True)]
    fig = Figure("efficiency", plots.paired_bars(
        "efficiency", bars, (("inference", "mJ / inference (lower is better)"),
                             ("ips_per_usd", "Inf/s per $ (higher is better)")), "", log=True, panels=True),
        "The energy an inference adds, and inferences per second per dollar of board (loops per second with "
        "Invoke over the price, as the table beside it), log scales", "t-efficiency",
        (("inference", ("inference",)), ("ips_per_usd", ("ips_per_usd",))))
    return Section("efficiency", "Throughput per watt and per dollar", intro=(
        "What a board costs per inference, in energy and in money: the energy table of `harness run`, "
        "its figures those of `--json` (`energy`, `cost`). Throughput per watt is the inverse of the energy "
        "per inference (inferences per joule = 1000 / mJ per inference).",),
        tables=(("t-efficiency", grid.with_keys([e.key for e in entries])),), figures=(fig,))
