"""The results of `harness run` and `harness show` as a terminal shows them: the table (in parts
when it must be split to fit), its legend, then the lines under it (harness.render.notes).

A run with variants (harness.results.variants) shows one table per board instead, each variant
against its float32 base (harness.render.variants), for the bases and variants; any other model
of the run keeps the results table. The per-row verdicts (how much a faster model would speed
the loop up) are left out for bases and variants: the speed-up of each variant is the answer
there, and the inference share is still in --json.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text

from harness.render import terminal
from harness.render.grid import Grid
from harness.render.notes import errors, notes, verdicts, warnings
from harness.render.table import results_grid
from harness.render.variants import comparison_grids, comparison_notes
from harness.results.summary import BenchmarkSummary
from harness.results.variants import Judged


def results_view(summaries: Sequence[BenchmarkSummary], title: str | None, wide: bool,
                 width: int | None) -> list[RenderableType]:
    """Everything printed for a set of results, laid out for ``width`` cells (None: unbounded)."""
    grid = grid_for(summaries, title, wide)
    return [*_table(grid, width), *notes(summaries)]


def run_view(judged: Sequence[Judged], run_id: str | None, wide: bool, width: int | None) -> list[RenderableType]:
    """A run's results (module docstring): per-board comparison tables when it has variants."""
    title = f"harness run {run_id}" if run_id else None
    compared = [j for j in judged if j.role is not None]
    if not compared:
        return results_view([j.summary for j in judged], title, wide, width)
    others = [j.summary for j in judged if j.role is None]
    view: list[RenderableType] = []
    for grid in comparison_grids(compared, run_id):
        view += _table(grid.narrow(wide), width)
    if others:
        view += _table(grid_for(others, title, wide), width)
    failed = [j.summary for j in judged if j.unsupported is None]
    return [*view, *comparison_notes(judged), *verdicts(others), *errors(failed),
            *warnings([j.summary for j in judged])]


def _table(grid: Grid, width: int | None) -> list[RenderableType]:
    return [*terminal.render(grid, width), *(Text(line, style="cyan") for line in grid.legend)]


def grid_for(summaries: Sequence[BenchmarkSummary], title: str | None, wide: bool) -> Grid:
    return results_grid(summaries, title).narrow(wide)


def natural_width(summaries: Sequence[BenchmarkSummary], wide: bool) -> int:
    """How wide the table is with every cell on one line."""
    return max((part.width for part in terminal.fit(grid_for(summaries, None, wide), None)), default=0)


def run_width(judged: Sequence[Judged], wide: bool) -> int:
    """How wide the widest table of ``run_view`` is with every cell on one line."""
    grids = [g.narrow(wide) for g in comparison_grids([j for j in judged if j.role is not None])]
    widths = [part.width for g in grids for part in terminal.fit(g, None)]
    others = [j.summary for j in judged if j.role is None]
    return max([natural_width(others, wide)] if others else [0] + widths)
