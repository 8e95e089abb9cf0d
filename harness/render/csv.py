"""A Grid as CSV (RFC 4180, via the csv module), one function; the report's ``--csv DIR``.

The header row holds the columns' keys (``target``, ``invoke``, ...: stable names for scripts),
every column is written, and each cell is its text as the table shows it ("4.5 µs ± 0.6 %").
Raw figures in nanoseconds are what ``--json`` carries; this is the table as read. A row's key
(the report's benchmark key, linking it to its figures) is the first column, ``row_key``, when any
row has one. Cells that a spreadsheet would run as a formula (=, +, -, @ first) are prefixed
with a quote, as OWASP advises for CSV injection, except numbers such as "-3 %".
"""

from __future__ import annotations

import csv
import io
import re

from harness.render.grid import Grid

_NUMBER = re.compile(r"[-+]?\d")


def _safe(text: str) -> str:
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(text):
        return "'" + text
    return text


def render(g: Grid) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    keyed = any(r.key for r in g.rows)
    w.writerow((["row_key"] if keyed else []) + [c.key for c in g.columns])
    for r in g.rows:
        w.writerow(([r.key or ""] if keyed else []) + [_safe(c.text) for c in r.cells])
    return out.getvalue()
