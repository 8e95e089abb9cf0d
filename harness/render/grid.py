"""The table model every table of harness is built on: columns with a width policy, rows of cells.

A builder (the results table, and later variants, comparisons, energy, streams) turns results into
a ``Grid`` of text; one render function per output turns a Grid into that output (the terminal:
harness.render.terminal). Nothing here knows about widths of a screen: a column only says how it
may be narrowed. A cell is a sequence of parts, and a line may break between two parts only, so a
wrapped cell loses nothing and never breaks inside a figure: "238 µs" stays whole, a model name
breaks after its "_", "." or "-".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.cells import cell_len

from harness.render.text import visible

# A run of characters in a name ends after one of these (or after NAME_CHUNK characters, so that a
# name without separators still wraps).
_NAME_PART = re.compile(r"[^._\-/ ]*[._\-/ ]+|[^._\-/ ]+$")
NAME_CHUNK = 12


@dataclass(frozen=True)
class Cell:
    """One cell: ``parts`` joined make its text; a line may break between two parts only (spaces
    at a break are dropped). ``style`` is a rich style for the terminal; other outputs ignore it."""

    parts: tuple[str, ...]
    style: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def width(self) -> int:
        return cell_len(self.text)

    @property
    def min_width(self) -> int:
        """The narrowest this cell can be wrapped: its widest part."""
        return max((cell_len(p.strip()) for p in self.parts), default=0)

    def lines(self, width: int) -> list[str]:
        """The cell wrapped into lines of at most ``width`` cells (a part wider than that gets a
        line of its own: nothing is ever cut)."""
        lines: list[str] = []
        line = ""
        for part in self.parts:
            if line and cell_len((line + part).rstrip()) > width:
                lines.append(line.rstrip())
                line = part.lstrip()
            else:
                line += part
        return [*lines, line.rstrip()]


def cell(*parts: str, style: str | None = None) -> Cell:
    """A cell of figures: break only where the builder put a part boundary."""
    return Cell(tuple(p for p in parts if p), style)


def name(text: str, style: str | None = None) -> Cell:
    """A cell holding a name (target, model file): it may break after "_", ".", "-", "/" or a space,
    and inside a run of more than NAME_CHUNK characters."""
    parts: list[str] = []
    for run in _NAME_PART.findall(visible(text)):  # a name never acts on the terminal
        parts += [run[i:i + NAME_CHUNK] for i in range(0, len(run), NAME_CHUNK)]
    return Cell(tuple(parts) or ("",), style)


def words(text: str) -> Cell:
    """Prose (a header, a note): it may break at spaces."""
    return Cell(tuple(re.findall(r"\S+\s*", text)) or ("",))


@dataclass(frozen=True)
class Column:
    """``key`` names the column for outputs that need one (CSV headers, tests). ``wide`` columns
    show only when every column is asked for (--wide). ``repeat`` marks the columns that say what a
    row is (target, model, threads): when a table must be split to fit, every part repeats them.
    When a table is too wide, columns of lower ``shrink`` are wrapped first (names before figures)."""

    key: str
    header: str
    justify: Literal["left", "right"] = "right"
    wide: bool = False
    repeat: bool = False
    shrink: int = 5


@dataclass(frozen=True)
class Row:
    """One row. ``key`` names what the row is about for outputs that link it to something else
    (the report's figures mark each benchmark with the key of its row); the terminal ignores it."""

    cells: tuple[Cell, ...]
    style: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Grid:
    """A table as text: columns, rows (one cell per column), a title and legend lines under it."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    title: str | None = None
    legend: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for r in self.rows:
            if len(r.cells) != len(self.columns):
                raise ValueError(f"a row has {len(r.cells)} cells for {len(self.columns)} columns")

    def select(self, keep: Sequence[int]) -> Grid:
        """The same table with only the columns at the indices ``keep``."""
        return Grid(tuple(self.columns[i] for i in keep),
                    tuple(Row(tuple(r.cells[i] for i in keep), r.style, r.key) for r in self.rows),
                    self.title, self.legend)

    def with_keys(self, keys: Sequence[str | None]) -> Grid:
        """The same table with ``keys[i]`` as the key of row i (one key per row)."""
        if len(keys) != len(self.rows):
            raise ValueError(f"{len(keys)} keys for {len(self.rows)} rows")
        return Grid(self.columns, tuple(Row(r.cells, r.style, k) for r, k in zip(self.rows, keys, strict=True)),
                    self.title, self.legend)

    def narrow(self, wide: bool) -> Grid:
        """Every column with ``wide``, else only the default ones."""
        return self if wide else self.select([i for i, c in enumerate(self.columns) if not c.wide])
