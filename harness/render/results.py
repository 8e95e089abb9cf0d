"""The results of `harness run` and `harness show` as a terminal shows them: the table (in parts
when it must be split to fit), its legend, then the lines under it (harness.render.notes)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text

from harness.render import terminal
from harness.render.grid import Grid
from harness.render.notes import notes
from harness.render.table import results_grid
from harness.results.summary import BenchmarkSummary


def results_view(summaries: Sequence[BenchmarkSummary], title: str | None, wide: bool,
                 width: int | None) -> list[RenderableType]:
    """Everything printed for a set of results, laid out for ``width`` cells (None: unbounded)."""
    grid = grid_for(summaries, title, wide)
    return [*terminal.render(grid, width), *(Text(line, style="cyan") for line in grid.legend),
            *notes(summaries)]


def grid_for(summaries: Sequence[BenchmarkSummary], title: str | None, wide: bool) -> Grid:
    return results_grid(summaries, title).narrow(wide)


def natural_width(summaries: Sequence[BenchmarkSummary], wide: bool) -> int:
    """How wide the table is with every cell on one line."""
    return max((part.width for part in terminal.fit(grid_for(summaries, None, wide), None)), default=0)
