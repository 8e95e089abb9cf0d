"""The report's sections on benchmarks: the results table, latency distributions, the bottleneck
picture, and throughput per watt and per dollar. Each row of a table is one benchmark, keyed by
its Entry's key, and each figure marks the same keys (harness.render.plots).

Energy and cost use the price and power that targets.toml declares (run.json's targets facts:
``price_usd``, ``power_w``, ``idle_power_w``) and say so: ``declared``. Energy per inference is
the active power over the median Invoke time, less the idle power where it is known (the energy
the inference adds over an idle board); inferences per joule is per watt of the board's active
power, throughput over power_w.
"""

from __future__ import annotations

from harness import stats
from harness.render import plots
from harness.render.grid import Column, Grid, Row, cell, name, words
from harness.render.report_model import Entry, Figure, Material, Section
from harness.render.table import duration, rate, results_grid
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


def _efficiency_row(e: Entry) -> tuple[Row, plots.Bars] | None:
    s, f = e.summary, e.target_facts
    power, idle, price = f.get("power_w"), f.get("idle_power_w"), f.get("price_usd")
    if s.invoke is None or not s.invoke.median or (power is None and price is None):
        return None
    ips = 1e9 / s.invoke.median
    per_joule = ips / power if power else None
    active = None if power is None else power - (idle or 0.0)
    mj = None if active is None else active * s.invoke.median / 1e6  # W * ns = nJ; / 1e6 = mJ
    per_dollar = ips / price if price else None
    loops = s.throughput_ips
    row = Row((*_keys(e), cell(duration(s.invoke.median)), cell(rate(ips)), cell(_num(power, "W")),
               cell(_num(mj, "mJ", 3)), cell(rate(per_joule) if per_joule else DASH), cell(_num(price, "$")),
               cell(rate(per_dollar) if per_dollar else DASH),
               cell(rate(loops / price) if loops and price else DASH), cell("declared")), key=e.key)
    return row, plots.Bars(e.key, e.label, {"watt": per_joule, "dollar": per_dollar})


def _num(x: float | None, unit: str, digits: int = 3) -> str:
    if x is None:
        return DASH
    return f"${x:,.{digits}g}" if unit == "$" else f"{x:.{digits}g} {unit}"


def efficiency_section(m: Material) -> Section:
    built = [r for e in m.entries if (r := _efficiency_row(e)) is not None]
    if not built:
        return Section("efficiency", "Throughput per watt and per dollar", notes=(
            "no target of these runs declares power_w or price_usd: add them to its [targets.NAME] in "
            "targets.toml (they are stored in run.json with the next run)",))
    columns = (*KEYS, Column("invoke", "Invoke"), Column("ips", "Inferences/s"), Column("power", "Power"),
               Column("mj", "Energy/inference"), Column("per_joule", "Inferences/J"), Column("price", "Price"),
               Column("per_dollar", "Inferences/s per $"), Column("loops_dollar", "Loops/s per $"),
               Column("source", "Power, price", "left"))
    grid = Grid(columns, tuple(r for r, _ in built), "Energy and cost (declared power and price)", (
        "Inferences/s = 1 / median Invoke; Inferences/J = that over the declared active power (power_w)",
        "Energy/inference = (power_w - idle_power_w, where declared) x median Invoke: what an inference adds",
        "declared: figures from targets.toml, not measured on the board"))
    fig = Figure("efficiency", plots.paired_bars(
        "efficiency", [b for _, b in built], (("watt", "inferences per joule (declared power)"),
                                              ("dollar", "inferences/s per dollar of board")),
        "", log=True, panels=True), "Inferences per joule and per second per dollar, from declared power and "
        "price (log scales)", "t-efficiency", (("watt", ("per_joule",)), ("dollar", ("per_dollar",))))
    return Section("efficiency", "Throughput per watt and per dollar", intro=(
        "What a board costs per inference, in energy and in money, from the power and price its "
        "targets.toml entry declares.",), tables=(("t-efficiency", grid),), figures=(fig,))

