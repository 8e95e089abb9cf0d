"""The energy and cost table of `harness run` and `harness show`, built as a Grid.

One row per benchmark with any energy figure (harness.results.energy): where the power comes from
(measured on the board, or declared in targets.toml), the active and idle power, the energy of an
inference and of a loop iteration, inferences per second per dollar, and at a required rate
(--rate) the share of time the board is busy and its average power. ``energy_rows`` gives the
same figures as plain values, for other outputs (the HTML report); ``energy_grid`` lays them out.
Columns no row has a figure for are left out, so a run without prices shows no price column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from harness.render import terminal
from harness.render.grid import Cell, Column, Grid, Row, cell, name
from harness.render.table import DASH, EMULATED_MARK, EMULATED_NOTE, percent, rate
from harness.results.energy import MEASURED
from harness.results.summary import BenchmarkSummary

COLUMNS = (
    Column("target", "Target", "left", repeat=True, shrink=1),
    Column("model", "Model", "left", repeat=True, shrink=0),
    Column("threads", "Thr", repeat=True, shrink=9),
    Column("source", "Power", "left", shrink=6),
    Column("watts", "Active / idle W", shrink=4),
    Column("inference", "mJ / inference", shrink=5),
    Column("loop", "mJ / loop", shrink=5),
    Column("ips_per_usd", "Inf/s per $", shrink=5),
    Column("busy", "Busy at rate", shrink=3),
    Column("average", "Avg W at rate", shrink=4),
    Column("reader", "Reader, total", "left", wide=True, shrink=2),
    Column("samples", "Samples idle / active", wide=True),
    Column("price", "Price $", wide=True),
)


def energy_rows(summaries: Sequence[BenchmarkSummary]) -> list[dict[str, Any]]:
    """One dict of plain values per benchmark that has an energy, cost or duty figure (None where
    a figure is not known): target, model, threads, emulated, source, active_w, idle_w,
    per_inference_mj, per_loop_mj, reader, total, idle_samples, active_samples, price_usd,
    ips_per_usd, rate_hz, busy_fraction, average_w, sustainable."""
    rows = []
    for s in summaries:
        if not has_figures(s):
            continue
        b, e, c, d = s.benchmark, s.energy, s.cost, s.duty
        rows.append({
            "target": b.target, "model": b.model, "threads": b.threads, "emulated": b.emulated,
            "source": e.source if e else None, "active_w": e.active_w if e else None,
            "idle_w": e.idle_w if e else None, "per_inference_mj": e.per_inference_mj if e else None,
            "per_loop_mj": e.per_loop_mj if e else None, "reader": e.reader if e else None,
            "total": e.total if e else None,
            "idle_samples": e.idle_samples if e and e.source == MEASURED else None,
            "active_samples": e.active_samples if e and e.source == MEASURED else None,
            "price_usd": c.price_usd if c else None, "ips_per_usd": c.ips_per_usd if c else None,
            "rate_hz": d.rate_hz if d else None, "busy_fraction": d.busy_fraction if d else None,
            "average_w": d.average_w if d else None, "sustainable": d.sustainable if d else None,
        })
    return rows


def has_figures(s: BenchmarkSummary) -> bool:
    """Whether the benchmark has a row in the energy table (an energy, cost or duty figure)."""
    return s.energy is not None or s.cost is not None or s.duty is not None


def millijoules(mj: float | None) -> str:
    """3 significant digits: 0.0634, 1.27, 215."""
    if mj is None:
        return "–"
    return "0" if mj == 0 else f"{mj:.3g}" if abs(mj) < 1000 else f"{mj:,.0f}"


def watts(w: float | None) -> str:
    return "–" if w is None else f"{w:.3g}" if abs(w) < 100 else f"{w:.0f}"


def _cells(r: dict[str, Any]) -> dict[str, Cell]:
    busy = r["busy_fraction"]
    return {
        "target": name(r["target"] + (EMULATED_MARK if r["emulated"] else "")),
        "model": name(r["model"]),
        "threads": cell(str(r["threads"])),
        "source": cell(r["source"] or "–"),
        "watts": cell(watts(r["active_w"]), f" / {watts(r['idle_w'])}") if r["active_w"] is not None else DASH,
        "inference": cell(millijoules(r["per_inference_mj"])),
        "loop": cell(millijoules(r["per_loop_mj"])),
        "ips_per_usd": cell(rate(r["ips_per_usd"])) if r["ips_per_usd"] is not None else DASH,
        "busy": (DASH if busy is None else cell(percent(busy)) if r["sustainable"]
                 else cell(percent(busy), " too slow", style="red")),
        "average": cell(watts(r["average_w"])),
        "reader": name(f"{r['reader']}, {r['total']}") if r["reader"] else DASH,
        "samples": (cell(str(r["idle_samples"]), f" / {r['active_samples']}")
                    if r["active_samples"] is not None else DASH),
        "price": cell(f"{r['price_usd']:,.2f}") if r["price_usd"] is not None else DASH,
    }


def _legend(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    sources = {r["source"] for r in rows}
    lines = []
    if MEASURED in sources:
        totals = sorted({f"{r['reader']}: {r['total']}" for r in rows if r["source"] == MEASURED})
        lines.append("measured: on the board, mean power while Invoking back to back less mean idle power "
                     f"({'; '.join(totals)}), × the median Invoke (per inference) or loop (per loop)")
    if "declared" in sources:
        lines.append("declared: targets.toml power_w less idle_power_w (power_w alone without it), × the "
                     "median Invoke or loop")
    if any(r["ips_per_usd"] is not None for r in rows):
        lines.append("Inf/s per $: loops per second with Invoke / price_usd")
    rates = sorted({r["rate_hz"] for r in rows if r["rate_hz"] is not None})
    if rates:
        average = ("; average = busy × active + (1 − busy) × idle, sleeping between inferences"
                   if any(r["average_w"] is not None for r in rows) else "")
        lines.append(f"at {', '.join(f'{x:g}' for x in rates)}/s: busy = rate × loop with Invoke{average}; "
                     "too slow: busy ≥ 100 %")
    emulated = sorted({r["target"] for r in rows if r["emulated"]})
    if emulated:
        lines.append(f"{EMULATED_MARK} {EMULATED_NOTE} ({', '.join(emulated)})")
    return tuple(lines)


def energy_grid(summaries: Sequence[BenchmarkSummary], title: str | None = "Energy and cost") -> Grid | None:
    """Every column of the energy table that some row has a figure in; None without any row."""
    rows = energy_rows(summaries)
    if not rows:
        return None
    cells = [_cells(r) for r in rows]
    keep = [i for i, c in enumerate(COLUMNS) if c.repeat or any(x[c.key] != DASH for x in cells)]
    columns = tuple(COLUMNS[i] for i in keep)
    if rows[0]["rate_hz"] is not None and len({r["rate_hz"] for r in rows}) == 1:
        at = f"at {rows[0]['rate_hz']:g}/s"
        columns = tuple(replace(c, header=c.header.replace("at rate", at)) for c in columns)
    grid_rows = tuple(Row(tuple(x[c.key] for c in columns)) for x in cells)
    return Grid(columns, grid_rows, title, _legend(rows))


def energy_view(summaries: Sequence[BenchmarkSummary], wide: bool, width: int | None) -> list[RenderableType]:
    """The energy table and its legend laid out for ``width`` cells; [] when no figure exists."""
    grid = energy_grid(summaries)
    if grid is None:
        return []
    return [*terminal.render(grid.narrow(wide), width), *(Text(line, style="cyan") for line in grid.legend)]


def natural_width(summaries: Sequence[BenchmarkSummary], wide: bool) -> int:
    grid = energy_grid(summaries)
    if grid is None:
        return 0
    return max((part.width for part in terminal.fit(grid.narrow(wide), None)), default=0)
