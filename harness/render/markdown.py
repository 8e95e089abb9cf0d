"""A Grid as a Markdown table (GitHub's pipe tables), one function; the report's Markdown version.

Every column is shown. A pipe inside a cell is escaped (``\\|``), as are the characters that would
start markup in a name (``*``, ``_``, backquote, ``<``), so a model file name reads as written.
"""

from __future__ import annotations

import re

from harness.render.grid import Grid

_MARKUP = re.compile(r"([\\|*_`<>\[\]])")


def escape(text: str) -> str:
    """``text`` safe inside a Markdown table cell or a line of prose (one line)."""
    return _MARKUP.sub(r"\\\1", text.replace("\n", " "))


def render(g: Grid) -> str:
    """The title in bold, the table, then its legend lines as a list; ends with a newline."""
    lines = [f"**{escape(g.title)}**", ""] if g.title else []
    lines.append("| " + " | ".join(escape(c.header) for c in g.columns) + " |")
    lines.append("|" + "|".join(":---" if c.justify == "left" else "---:" for c in g.columns) + "|")
    lines += ["| " + " | ".join(escape(c.text) for c in r.cells) + " |" for r in g.rows]
    if g.legend:
        lines += ["", *(f"- {escape(line)}" for line in g.legend)]
    return "\n".join(lines) + "\n"
