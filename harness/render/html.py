"""A Grid as an HTML table: the report's tables (harness.render.report), one function.

Every column is shown (an HTML page scrolls; no --wide needed). Text is escaped twice over: names
already went through harness.render.text.visible in the builders (control characters as escapes),
and everything is HTML-escaped here, so a model named ``<script>.tflite`` stays text. Each row
with a key carries it as ``data-key`` and each cell its column's key as ``data-col``, so that a
figure beside the table can be checked against it (the report's tests count both). A cell's rich
style (red, green, yellow) becomes a class, ``s-red``; the page's stylesheet colours them.
"""

from __future__ import annotations

import html
import re

from harness.render.grid import Cell, Grid, Row


def _style_class(style: str | None) -> str:
    """"bold red" -> "s-bold s-red": rich style words as CSS class names (anything else dropped)."""
    return " ".join(f"s-{w}" for w in (style or "").split() if re.fullmatch(r"[a-z_]+", w))


def _attrs(values: dict[str, str | None]) -> str:
    """' data-col="x" class="y"': the attributes that have a value, escaped."""
    return "".join(f' {k}="{html.escape(v)}"' for k, v in values.items() if v)


def _cell(c: Cell, col: str, justify: str) -> str:
    cls = " ".join(x for x in (justify, _style_class(c.style)) if x)
    return f"<td{_attrs({'data-col': col, 'class': cls})}>{html.escape(c.text)}</td>"


def _row(g: Grid, r: Row) -> str:
    cells = "".join(_cell(c, col.key, col.justify) for c, col in zip(r.cells, g.columns, strict=True))
    return f"<tr{_attrs({'data-key': r.key, 'class': _style_class(r.style)})}>{cells}</tr>"


def render(g: Grid, table_id: str | None = None) -> str:
    """The table (its title as the caption) and its legend lines under it, in one ``div``."""
    head = "".join(f"<th{_attrs({'data-col': c.key, 'class': c.justify})}>{html.escape(c.header)}</th>"
                   for c in g.columns)
    caption = f"<caption>{html.escape(g.title)}</caption>" if g.title else ""
    body = "\n".join(_row(g, r) for r in g.rows)
    legend = "".join(f"<li>{html.escape(line)}</li>" for line in g.legend)
    return (f'<div class="grid"><table{_attrs({"id": table_id})}>{caption}<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table>" + (f'<ul class="legend">{legend}</ul>' if legend else "") + "</div>")
