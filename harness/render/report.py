"""`harness report`: stored runs as one self-contained HTML page, its Markdown version, and a CSV
file per table. Assembly only: the sections come from harness.render.report_runs,
report_benchmarks and report_models; tables are Grids rendered by harness.render.html, markdown
and csv; figures are inline SVG from harness.render.plots.

Self-contained and offline: one file, no script, no external style sheet, font or picture; every
figure is an inline ``<svg>``. The page's Content-Security-Policy (``default-src 'none'``, inline
styles and data: images only) makes the browser refuse any load from elsewhere, so a page that
tried one would say so in its console. Reproducible: the same runs give the same bytes (no
generation time is written; each run's own times are in its table).

Sections, in order (SECTIONS): runs and boards, results, latency distributions, the bottleneck,
per-layer time, variants, efficiency, comparisons (of benchmarks, and of streams), and streams
(harness.render.report_streams) when stream runs are given.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import __version__
from harness.render import csv, markdown, plots
from harness.render import html as html_table
from harness.render.report_benchmarks import (
    bottleneck_section,
    efficiency_section,
    latency_section,
    results_section,
)
from harness.render.report_model import Material, Section
from harness.render.report_models import comparison_section, layers_section, variants_section
from harness.render.report_runs import runs_section
from harness.render.report_streams import streams_section


@dataclass(frozen=True)
class Options:
    by: str | None = None  # harness compare's --by within each run; None: between runs, or chosen
    metric: str = "invoke"
    top: int = 10  # heaviest layers per profile


Builder = Callable[[Material, Options], Section | None]
SECTIONS: tuple[Builder, ...] = (
    lambda m, o: runs_section(m),
    lambda m, o: results_section(m) if m.entries else None,
    lambda m, o: latency_section(m),
    lambda m, o: bottleneck_section(m),
    lambda m, o: layers_section(m, o.top),
    lambda m, o: variants_section(m),
    lambda m, o: efficiency_section(m),
    lambda m, o: comparison_section(m, o.by, o.metric),
    lambda m, o: streams_section(m),
)


def build(m: Material, options: Options = Options()) -> list[Section]:
    """The report's sections (those that have something to say, or say what is missing)."""
    plots.require()
    return [s for build_one in SECTIONS if (s := build_one(m, options)) is not None]


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #222;
       margin: 0 auto; padding: 1.5em 2em 4em; max-width: 1400px; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; }
nav ol { columns: 2; padding-left: 1.4em; } .meta { color: #555; }
.grid { overflow-x: auto; margin: 1em 0 1.4em; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e6e6e6; vertical-align: top; }
th { background: #f4f5f7; border-bottom: 1px solid #bbb; } th.left, td.left { text-align: left; } td.left { max-width: 32em; overflow-wrap: break-word; }
th.right, td.right { text-align: right; white-space: nowrap; }
tr.s-red td { background: #fdecea; } tr.s-dim td { color: #888; } tr.s-yellow td { background: #fff8e1; }
td.s-red { color: #c62828; } td.s-green { color: #2e7d32; } td.s-yellow { color: #8d6e00; }
ul.legend { margin: .3em 0 0; padding-left: 1.2em; color: #555; font-size: 12px; }
figure { margin: 1em 0 1.6em; max-width: 1100px; } figure svg { width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 12.5px; margin-top: .3em; }
p.note { color: #8d6e00; background: #fff8e1; padding: .4em .8em; border-radius: 4px; }
ul.lines { font-size: 13px; } details { color: #555; margin: .5em 0; } code { background: #f4f5f7; padding: 0 .25em; border-radius: 3px; }
"""
NOTES_SHOWN = 3
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _prose(text: str) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _marks(fig_marks: Sequence[tuple[str, tuple[str, ...]]]) -> str:
    """"box rest:invoke,size": each part, and the columns its rows need a figure in."""
    return " ".join(part + (f":{','.join(cols)}" if cols else "") for part, cols in fig_marks)


def _section_html(s: Section) -> list[str]:
    out = [f'<section id="{s.id}">', f"<h2>{html.escape(s.title)}</h2>"]
    out += [f"<p>{_prose(p)}</p>" for p in s.intro]
    if len(s.notes) <= NOTES_SHOWN:
        out += [f'<p class="note">{_prose(n)}</p>' for n in s.notes]
    else:  # a long list (benchmarks without a counterpart) folded, so the figures stay in view
        out.append(f"<details><summary>{len(s.notes)} notes</summary><ul>"
                   + "".join(f"<li>{_prose(n)}</li>" for n in s.notes) + "</ul></details>")
    for table_id, grid in s.tables:
        for fig in (f for f in s.figures if f.table == table_id):  # figures first, their table right under them
            out.append(f'<figure data-figure="{fig.name}" data-table="{table_id}" data-marks="{_marks(fig.marks)}">'
                       f"{plots.inline(fig.svg, fig.name)}<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
        out.append(html_table.render(grid, table_id))
    if s.lines:
        out.append('<ul class="lines">' + "".join(f"<li>{html.escape(line)}</li>" for line in s.lines) + "</ul>")
    return [*out, "</section>"]


def html_page(m: Material, sections: Sequence[Section]) -> str:
    """The whole report as one HTML document (UTF-8)."""
    runs = ", ".join(r.run_id for r in m.runs)
    nav = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
    body = [line for s in sections for line in _section_html(s)]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>harness report: {html.escape(runs)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>harness report</h1>",
        f'<p class="meta">Runs {html.escape(runs)} · written by harness {html.escape(__version__)} from the stored '
        "results (every figure recomputed from the raw samples) · emulated targets are marked *</p>",
        f"<nav><ol>{nav}</ol></nav>", *body, "</body>", "</html>", ""])


def markdown_page(m: Material, sections: Sequence[Section]) -> str:
    """The report as Markdown: the same sections and tables; figures are in the HTML version."""
    out = ["# harness report", "",
           f"Runs {markdown.escape(', '.join(r.run_id for r in m.runs))}, written by harness {__version__} "
           "from the stored results. Emulated targets are marked \\*. The figures are in the HTML report.", ""]
    for s in sections:
        out += [f"## {markdown.escape(s.title)}", ""]
        out += [p for text in s.intro for p in (text, "")]
        out += [p for text in s.notes for p in (f"> {text}", "")]
        for _, grid in s.tables:
            out += [markdown.render(grid)]
        out += [f"- {markdown.escape(line)}" for line in s.lines] + ([""] if s.lines else [])
    return "\n".join(out)


def csv_files(sections: Sequence[Section]) -> dict[str, str]:
    """{file name: CSV text}, one per table, named after its section and table id."""
    return {f"{n:02d}-{table_id.removeprefix('t-')}.csv": csv.render(grid)
            for n, (table_id, grid) in enumerate(((t, g) for s in sections for t, g in s.tables), 1)}


def write(path: Path, text: str) -> int:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all; returns its size in bytes."""
    import os

    data = text.encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(data)
