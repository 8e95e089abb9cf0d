"""A Grid on the terminal: fitted to a width by wrapping, never by cutting.

Fitting, in order: every column at its natural width when that fits; else the columns of lowest
``shrink`` are wrapped (at their cells' part boundaries) until the table fits; else, when even the
narrowest wrapping is too wide, the table is split into parts that each fit, each repeating the
``repeat`` columns (target, model, threads). A cell is never cut and never ends in "…": a part
wider than its column (a terminal narrower than one figure) takes a line of its own and the
terminal folds it. With no width (a file or a pipe asking for every column), every column keeps
its natural width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from harness.render.grid import Grid, words

GAP = 2  # columns are two spaces apart (padding of one, and the box's blank vertical rule)


@dataclass(frozen=True)
class Fitted:
    """One printable part of a table: its grid and the width of each of its columns."""

    grid: Grid
    widths: tuple[int, ...]

    @property
    def width(self) -> int:
        return sum(self.widths) + GAP * (len(self.widths) - 1)


def _natural(g: Grid, i: int) -> int:
    return max([cell_len(g.columns[i].header)] + [r.cells[i].width for r in g.rows])


def _minimum(g: Grid, i: int) -> int:
    return max([words(g.columns[i].header).min_width] + [r.cells[i].min_width for r in g.rows])


def _wrapped(g: Grid, i: int, width: int) -> int:
    """The width column i actually takes when wrapped to at most ``width``."""
    cells = [words(g.columns[i].header), *(r.cells[i] for r in g.rows)]
    return max(cell_len(line) for c in cells for line in c.lines(width))


def fit(g: Grid, width: int | None) -> list[Fitted]:
    """``g`` laid out for ``width`` terminal cells (None: unbounded), as one part or several."""
    if not g.columns:
        return []
    widths = [_natural(g, i) for i in range(len(g.columns))]
    if width is None or _total(widths) <= width:
        return [Fitted(g, tuple(widths))]
    squeezed = _squeeze(g, width)
    if squeezed is not None:
        return [Fitted(g, tuple(squeezed))]
    parts = _split(g, width)
    if len(parts) == 1:  # the repeated columns and one more, at their narrowest, are still too wide
        return [Fitted(g, tuple(_minimum(g, i) for i in range(len(g.columns))))]
    return [fitted for keep in parts for fitted in fit(g.select(keep), width)]


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * (len(widths) - 1)


def _squeeze(g: Grid, width: int) -> list[int] | None:
    """Column widths that fit ``width``; None when the narrowest wrapping is still too wide.

    First the headers wider than their cells go to two lines (no row gets taller). Then, one step
    at a time, the column that makes the table fewest lines taller per cell it gives up is
    wrapped narrower (ties: the lower ``shrink``, then the wider), until the table fits.
    """
    mins = [_minimum(g, i) for i in range(len(g.columns))]
    if _total(mins) > width:
        return None
    widths = [_wrapped(g, i, max(mins[i], _cells_width(g, i))) for i in range(len(g.columns))]
    while _total(widths) > width:
        height = _height(g, widths)
        best: tuple[float, int, int, int, int] | None = None
        for i in range(len(g.columns)):
            if widths[i] <= mins[i]:
                continue
            narrower = _wrapped(g, i, widths[i] - 1)
            cost = (_height(g, [*widths[:i], narrower, *widths[i + 1:]]) - height) / (widths[i] - narrower)
            candidate = (cost, g.columns[i].shrink, -widths[i], i, narrower)
            best = candidate if best is None or candidate < best else best
        if best is None:
            return None
        widths[best[3]] = best[4]
    return widths


def _height(g: Grid, widths: Sequence[int]) -> int:
    """Lines the table's rows take at these column widths."""
    return sum(max(len(c.lines(w)) for c, w in zip(r.cells, widths, strict=True)) for r in g.rows)


def _cells_width(g: Grid, i: int) -> int:
    return max((r.cells[i].width for r in g.rows), default=0)


def _split(g: Grid, width: int) -> list[list[int]]:
    """Column indices of each part: the ``repeat`` columns, then a run of the others, in order.

    As few parts as fit at the columns' narrowest; among those splits, the one whose widest part
    (at natural widths) is narrowest, so that the parts need about as much wrapping each.
    """
    keys = [i for i, c in enumerate(g.columns) if c.repeat]
    rest = [i for i, c in enumerate(g.columns) if not c.repeat]
    base_min = sum(_minimum(g, i) + GAP for i in keys) - GAP
    base_nat = sum(_natural(g, i) + GAP for i in keys) - GAP
    need = [GAP + _minimum(g, i) for i in rest]
    nat = [GAP + _natural(g, i) for i in rest]

    def fits(a: int, b: int) -> bool:  # columns rest[a:b] in one part, at their narrowest
        return b - a == 1 or base_min + sum(need[a:b]) <= width

    # best[k, b]: (the narrowest widest part, the cuts) when rest[:b] is split into k parts
    n = len(rest)
    best: dict[tuple[int, int], tuple[int, list[int]]] = {(0, 0): (0, [])}
    for k in range(1, n + 1):
        for b in range(1, n + 1):
            options = [(max(best[k - 1, a][0], base_nat + sum(nat[a:b])), [*best[k - 1, a][1], a])
                       for a in range(b) if (k - 1, a) in best and fits(a, b)]
            if options:
                best[k, b] = min(options)
        if (k, n) in best:
            cuts = [*best[k, n][1], n]
            return [keys + rest[a:b] for a, b in pairwise(cuts)]
    return [keys]


def render(g: Grid, width: int | None) -> list[Table]:
    """The rich tables that show ``g`` within ``width`` cells (several when it had to be split)."""
    parts = fit(g, width)
    return [_table(part, n, len(parts)) for n, part in enumerate(parts, 1)]


def _table(part: Fitted, n: int, of: int) -> Table:
    g = part.grid
    title = g.title if of == 1 else f"{g.title or 'table'} ({n}/{of})"
    t = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=box.SIMPLE_HEAD,
              show_edge=False, pad_edge=False, padding=(0, GAP - 1, 0, 0), collapse_padding=False)
    for col, w in zip(g.columns, part.widths, strict=True):
        t.add_column("\n".join(_balanced(col.header, w)), justify=col.justify, width=w, no_wrap=True,
                     overflow="fold")
    for r in g.rows:
        t.add_row(*(Text("\n".join(c.lines(w)), style=c.style or "")
                    for c, w in zip(r.cells, part.widths, strict=True)), style=r.style)
    return t


def _balanced(header: str, width: int) -> list[str]:
    """The header in as few lines as ``width`` allows, each as short as that count allows
    ("Loop with /", "w/o Invoke" rather than "Loop with / w/o", "Invoke")."""
    h = words(header)
    lines = h.lines(width)
    narrower = next((w for w in range(h.min_width, width) if len(h.lines(w)) == len(lines)), width)
    return h.lines(narrower)
