"""Renderers of benchmark summaries: one shared row model, one function per output format.

Numbers stay in nanoseconds until here; choosing µs or ms is a rendering decision only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from harness.render.text import visible
from harness.results.summary import BenchmarkSummary
from harness.stats import Summary


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


@dataclass(frozen=True)
class Row:
    """One line of the results table, as text cells."""

    target: str
    model: str
    threads: str
    runtime: str
    init: str
    first: str
    with_invoke: str
    spread: str
    without_invoke: str
    invoke: str
    throughput: str
    gflops: str
    share: str
    status: str


def _loop(s: Summary | None) -> str:
    return f"{duration(s.median)} ({duration(s.p90)}, {duration(s.p99)})" if s else "–"


def row(s: BenchmarkSummary) -> Row:
    b = s.benchmark
    if s.with_invoke is None:
        status = "failed"
    elif not b.complete:
        status = "incomplete"
    else:
        status = "ok"
    runtime = b.runtime or "?"
    if b.emulated:
        runtime += " (emulated)"
    return Row(
        target=visible(b.target), model=visible(b.model), threads=str(b.threads), runtime=visible(runtime),
        init=duration(b.model_info.get("init_ns")), first=duration(b.first_invoke_ns),
        with_invoke=_loop(s.with_invoke),
        spread=f"{100 * s.with_invoke.rel_stdev:.1f} %" if s.with_invoke else "–",
        without_invoke=duration(s.without_invoke.median) if s.without_invoke else "–",
        invoke=duration(s.invoke.median) if s.invoke else "–",
        throughput=f"{s.throughput_ips:,.0f}" if s.throughput_ips else "–",
        gflops=f"{s.gflops:.3g}" if s.gflops else "–",
        share=f"{100 * s.inference_share:.0f} %" if s.inference_share is not None else "–",
        status=status,
    )


COLUMNS = (
    ("target", "Target", "left"), ("model", "Model", "left"), ("threads", "Thr", "right"),
    ("runtime", "Runtime", "left"), ("init", "Init", "right"), ("first", "1st Invoke", "right"),
    ("with_invoke", "Loop with Invoke (p90, p99)", "right"), ("spread", "σ/med", "right"),
    ("without_invoke", "w/o Invoke", "right"), ("invoke", "Invoke", "right"),
    ("throughput", "Loops/s", "right"), ("gflops", "GFLOP/s", "right"), ("share", "Inference", "right"),
)


def table(summaries: Sequence[BenchmarkSummary], title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for _, header, justify in COLUMNS:
        t.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in summaries:
        r = row(s)
        style = {"failed": "red", "incomplete": "yellow"}.get(r.status)
        t.add_row(*(getattr(r, key) for key, _, _ in COLUMNS), style=style)
    return t


def notes(summaries: Sequence[BenchmarkSummary]) -> Iterator[Text]:
    """Under the table: the verdict of each row, then hyperfine-style warnings with their fix."""
    for s in summaries:
        b = s.benchmark
        name = visible(f"{b.target} · {b.model} · {b.threads} thr")
        if b.error is not None:
            hint = b.error.get("hint")
            yield Text.assemble((f"{name}: ", "bold"), ("error: ", "bold red"),
                                visible(str(b.error.get("message"))), visible(f" (fix: {hint})") if hint else "")
            if s.with_invoke is None:
                continue
        yield Text.assemble((f"{name}: ", "bold"), s.verdict)
        if b.emulated:
            yield Text(f"  note: {visible(b.target)} is emulated; its times are host timings of the device code, "
                       "not the device's", style="cyan")
        for f in s.findings:
            yield Text.assemble(("  warning: ", "yellow"), f.message, (f" → {f.hint}", "dim"))


def json_lines(summaries: Iterable[BenchmarkSummary], run_id: str | None) -> Iterator[str]:
    for s in summaries:
        yield json.dumps(s.to_json(run_id), separators=(", ", ": "))
