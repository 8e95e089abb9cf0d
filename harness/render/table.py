"""The results table of `harness run` and `harness show`, built as a Grid (harness.render.grid).

Numbers stay in nanoseconds until here; choosing µs or ms is a rendering decision only. The
default columns answer "how fast, and is the model the bottleneck?" and fit 100 terminal columns
(harness.render.terminal wraps the names when needed); ``wide`` columns add the rest, and --json
carries everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence

from harness import stats
from harness.render.grid import Cell, Column, Grid, Row, cell, name
from harness.render.text import visible
from harness.results.summary import BenchmarkSummary, share_text, speedup
from harness.results.variants import Judged

EMULATED_MARK = "*"
EMULATED_NOTE = "emulated: host timings of the device code, not the device's"

COLUMNS = (
    Column("target", "Target", "left", repeat=True, shrink=1),
    Column("model", "Model", "left", repeat=True, shrink=0),
    Column("threads", "Thr", repeat=True, shrink=9),
    Column("runtime", "Runtime", "left", wide=True, shrink=2),
    Column("init", "Init", wide=True),
    Column("first", "1st Invoke", wide=True),
    Column("invoke", "Invoke ± MAD", shrink=4),
    Column("loop", "Loop with / w/o Invoke", shrink=3),
    Column("loop_tail", "Loop p90 / p99", wide=True, shrink=3),
    Column("loop_sigma", "Loop σ/med", wide=True),
    Column("share", "Inference share", shrink=4),
    Column("bound", "Max loop speed-up", wide=True),
    Column("throughput", "Loops/s"),
    Column("gflops", "GFLOP/s", wide=True),
)
DASH = cell("–")


def duration(ns: float | None) -> str:
    """A duration for people: 850 ns, 12.3 µs, 4.56 ms, 1.23 s."""
    if ns is None:
        return "–"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.3g} µs" if ns < 1e5 else f"{ns / 1e3:.0f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.3g} ms" if ns < 1e8 else f"{ns / 1e6:.0f} ms"
    return f"{ns / 1e9:.3g} s"


def percent(fraction: float) -> str:
    """0.031 -> "3 %", 0.004 -> "0.4 %": at least one significant digit."""
    pct = 100 * fraction
    return f"{pct:.0f} %" if pct >= 0.95 else f"{pct:.1f} %" if pct >= 0.095 else f"{pct:.2f} %"


def rate(per_s: float) -> str:
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def label(s: BenchmarkSummary) -> str:
    """A row's short name for the lines under the table: "local · ds_cnn_kws t1"."""
    b = s.benchmark
    return visible(f"{b.target} · {b.model.removesuffix('.tflite')} t{b.threads}")


def status(s: BenchmarkSummary) -> str:
    if s.with_invoke is None:
        return "failed"
    return "ok" if s.benchmark.complete else "incomplete"


def invoke_cell(s: BenchmarkSummary) -> Cell:
    """"12.6 µs ± 0.5 %": the median Invoke and its MAD relative to it ("failed", "–")."""
    if s.with_invoke is None:
        return cell("failed")
    if s.invoke is None:
        return DASH
    values = s.benchmark.stage("invoke")
    spread = stats.mad(values) / s.invoke.median if s.invoke.median else None
    return cell(duration(s.invoke.median), f" ± {percent(spread)}" if spread is not None else "")


def _cells(s: BenchmarkSummary) -> dict[str, Cell]:
    b, w, o = s.benchmark, s.with_invoke, s.without_invoke
    runtime = (b.runtime or "?") + (" (emulated)" if b.emulated else "")
    return {
        "target": name(b.target + (EMULATED_MARK if b.emulated else "")),
        "model": name(b.model),
        "threads": cell(str(b.threads)),
        "runtime": name(runtime),
        "init": cell(duration(b.model_info.get("init_ns"))),
        "first": cell(duration(b.first_invoke_ns)),
        "invoke": invoke_cell(s),
        "loop": cell(duration(w.median) if w else "–", f" / {duration(o.median)}" if o else " / –"),
        "loop_tail": cell(duration(w.p90), f" / {duration(w.p99)}") if w else DASH,
        "loop_sigma": cell(percent(w.rel_stdev)) if w and w.median else DASH,
        "share": _share(s),
        "bound": cell(speedup(s.max_speedup_from_model)) if s.max_speedup_from_model else DASH,
        "throughput": cell(rate(s.throughput_ips)) if s.throughput_ips else DASH,
        "gflops": cell(f"{s.gflops:.3g}") if s.gflops else DASH,
    }


def _share(s: BenchmarkSummary) -> Cell:
    """"88 % ± 2 %", the "± 2 %" a part of its own so that it may go to the next line."""
    if s.inference_share is None:
        return DASH
    head, sep, tail = share_text(s.inference_share, s.inference_share_ci).partition(" ±")
    return cell(head, f" ±{tail}" if sep else "")


def results_grid(summaries: Sequence[BenchmarkSummary], title: str | None = None) -> Grid:
    """Every column of the results table (``Grid.narrow(wide=False)`` keeps the default ones)."""
    rows = []
    for s in summaries:
        cells = _cells(s)
        style = {"failed": "red", "incomplete": "yellow"}.get(status(s))
        rows.append(Row(tuple(cells[c.key] for c in COLUMNS), style))
    emulated = sorted({s.benchmark.target for s in summaries if s.benchmark.emulated})
    legend = (f"{EMULATED_MARK} {EMULATED_NOTE} ({', '.join(emulated)})",) if emulated else ()
    return Grid(COLUMNS, tuple(rows), title, legend)


def json_lines(records: Iterable[BenchmarkSummary | Judged], run_id: str | None) -> Iterator[str]:
    """One JSON line per benchmark: a Judged's object (the benchmark's plus variant, fidelity,
    speedup and flags) or a bare summary's."""
    for r in records:
        yield json.dumps(r.to_json(run_id), separators=(", ", ": "))
