"""`harness compare` for people: a table of the pairs (a Grid, harness.render.grid) and one line per
pair as hyperfine says it ("rpi5 is 2.31× ± 0.04 faster than rpi4 on ds_cnn_kws.tflite, 2
threads"), the fastest candidate first within each group; then what the units, the test and the
interval were.

The ± is the larger side of the 95 % interval of the factor shown (the ratio, or its inverse for
"faster"), to one significant digit, and the factor to the same decimals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence

from rich.console import RenderableType
from rich.text import Text

from harness import stats
from harness.render import terminal
from harness.render.grid import Cell, Column, Grid, Row, cell, name, words
from harness.render.table import EMULATED_MARK, EMULATED_NOTE, duration
from harness.render.text import visible
from harness.results.compare import METRICS, Comparison, Side

UNIT_TEXT = {"block-median": "block medians", "run-median": "run medians", "window-median": "window medians",
             "window-p99": "window p99s"}
UNIT_NOTE = {"block-median": "each ABBA block's median", "run-median": "each process's median",
             "window-median": "each tenth of the stream's median", "window-p99": "each tenth of the stream's p99"}
TEST_TEXT = {"mann-whitney-u": "Mann–Whitney U", "welch-t": "Welch's t"}
PLURAL = {"board": "boards", "model": "models", "threads": "thread counts", "runtime": "runtimes",
          "delegate": "delegates", "harness": "harness versions", "schedule": "schedules"}

COLUMNS = (
    Column("on", "Compared on", "left", repeat=True, shrink=0),
    Column("baseline", "Baseline", "left", repeat=True, shrink=1),
    Column("candidate", "Candidate", "left", repeat=True, shrink=1),
    Column("base_median", "Baseline median", shrink=6),
    Column("cand_median", "Candidate median", shrink=6),
    Column("verdict", "Candidate vs baseline", shrink=3),
    Column("p", "p", shrink=7),
    Column("test", "Units, test", "left", shrink=2),
    Column("ratio", "Ratio (95 % CI)", wide=True),
    Column("n", "Units", wide=True),
)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def label(c: Comparison, side: Side) -> str:
    """The side as its pair tells it apart: its target, thread count, model or run."""
    other_side = c.pair.candidate if side is c.pair.baseline else c.pair.baseline
    b, other = side.benchmark, other_side.benchmark
    text = {"board": b.target + (EMULATED_MARK if b.emulated else ""), "threads": plural(b.threads, "thread"),
            "variant": b.model}.get(c.pair.by)
    if text is None:  # two runs: the run, and what else tells the sides apart
        apart = [str(getattr(b, f)) for f in ("target", "model") if getattr(b, f) != getattr(other, f)]
        apart += [plural(b.threads, "thread")] if b.threads != other.threads else []
        schedule = side.facts()["schedule"]  # streams: the rate and deadline the latency answered to
        apart += [schedule] if schedule and schedule != other_side.facts()["schedule"] else []
        text = side.run_id + (f" ({', '.join(apart)})" if apart else "")
    return visible(text)


def context(c: Comparison) -> str:
    """What both sides share: "ds_cnn_kws.tflite, 2 threads", "local · ds_cnn_kws.tflite"."""
    a, b = c.pair.baseline.benchmark, c.pair.candidate.benchmark
    shared = [a.target + (EMULATED_MARK if a.emulated else "")] if a.target == b.target else []
    parts = [" · ".join(shared + ([a.model] if a.model == b.model else []))]
    if a.threads == b.threads:
        parts.append(plural(a.threads, "thread"))
    return visible(", ".join(p for p in parts if p))


def factor(c: Comparison) -> tuple[str, str]:
    """("2.31× ± 0.04", "faster"): the factor the candidate is faster or slower by, with its ±."""
    assert c.ratio is not None
    slower = c.ratio >= 1
    f = c.ratio if slower else 1 / c.ratio
    if c.ratio_ci is None:
        return f"{f:.3g}×", "slower" if slower else "faster"
    lo, hi = c.ratio_ci if slower else (1 / c.ratio_ci[1], 1 / c.ratio_ci[0])
    half = max(f - lo, hi - f)
    digits = 2 if half <= 0 else min(4, max(0, -math.floor(math.log10(half))))
    return f"{f:.{digits}f}× ± {half:.{digits}f}", "slower" if slower else "faster"


def p_text(p: float | None) -> str:
    return "–" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def p_phrase(p: float) -> str:
    """"p < 0.001", "p = 0.029"."""
    return f"p {p_text(p)}" if p < 0.001 else f"p = {p_text(p)}"


def _figure(x: float) -> str:
    """Three significant digits, trailing zeros kept: 1.10, 29.7, 0.433, 120."""
    return f"{x:#.3g}".rstrip(".") if x < 1e3 else f"{x:.0f}"


def ratio_text(c: Comparison, sep: str = " (", end: str = ")") -> str:
    """"1.10 (1.03–1.16)": the ratio and its 95 % interval."""
    if c.ratio is None:
        return "–"
    if c.ratio_ci is None:
        return _figure(c.ratio)
    return f"{_figure(c.ratio)}{sep}{_figure(c.ratio_ci[0])}–{_figure(c.ratio_ci[1])}{end}"


def method(c: Comparison) -> str:
    return UNIT_TEXT[c.unit] + (f", {TEST_TEXT[c.test]}" if c.test else "")


def _verdict_cell(c: Comparison) -> Cell:
    if c.verdict in ("faster", "slower"):
        figure, word = factor(c)
        return cell(figure, f" {word}", style="red" if word == "slower" else "green")
    if c.verdict == "refused":
        return cell("refused", style="red")
    return words(c.verdict)


def ordered(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Grouped by what they share (in first-seen order), the fastest candidate first in each."""
    groups: dict[tuple[str, int], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((context(c), id(c.pair.baseline)), []).append(c)
    return [c for g in groups.values() for c in sorted(g, key=lambda c: c.median("candidate") or math.inf)]


def comparison_grid(comparisons: Sequence[Comparison]) -> Grid:
    rows = []
    for c in ordered(comparisons):
        n = f"{len(c.baseline_units)} / {len(c.candidate_units)}"
        cells = {"on": name(context(c)), "baseline": name(label(c, c.pair.baseline)),
                 "candidate": name(label(c, c.pair.candidate)),
                 "base_median": cell(duration(c.median("baseline"))), "cand_median": cell(duration(c.median("candidate"))),
                 "verdict": _verdict_cell(c), "p": cell(p_text(c.p_value)), "test": words(method(c)),
                 "ratio": cell(ratio_text(c)), "n": cell(n)}
        rows.append(Row(tuple(cells[col.key] for col in COLUMNS)))
    metric = METRICS[comparisons[0].metric] if comparisons else "Invoke time"
    grid = Grid(COLUMNS, tuple(rows), f"harness compare: {metric}", tuple(legend(comparisons)))
    if len({method(c) for c in comparisons}) <= 1:  # one method for all: said in the legend only
        return grid.select([i for i, col in enumerate(COLUMNS) if col.key != "test"])
    return grid


def legend(comparisons: Sequence[Comparison]) -> Iterator[str]:
    """What the figures are: the units and tests used, the ratio's interval, what block medians
    cannot see, emulated targets."""
    used = sorted({(c.unit, c.test) for c in comparisons if c.test}, key=str)
    for unit, test in used:
        # a p99 unit is a p99 of the latency itself, not of a p99
        quantity = METRICS["latency" if unit == "window-p99" else comparisons[0].metric]
        yield (f"units: {UNIT_TEXT[unit]} ({UNIT_NOTE[unit]} of the {quantity}); "
               f"test: {TEST_TEXT[test or '']}, two-sided, α = {stats.ALPHA:g}")
    if used:
        yield ("ratio: candidate / baseline of the units' medians (above 1: slower), 95 % interval "
               "from a bootstrap over the units")
    if any(c.unit == "block-median" and c.test for c in comparisons):
        yield ("block medians see what changes between blocks, not between processes: for runs made "
               "apart, run both with --processes 3 or more to test run medians")
    emulated = sorted({s.benchmark.target for c in comparisons for s in (c.pair.baseline, c.pair.candidate)
                       if s.benchmark.emulated})
    if emulated:
        yield f"{EMULATED_MARK} {EMULATED_NOTE} ({', '.join(emulated)})"


def sentence(c: Comparison) -> Text:
    """The pair in one line, as hyperfine says it, with what else differs between the sides."""
    cand, base, on = label(c, c.pair.candidate), label(c, c.pair.baseline), context(c)
    where = f" on {on}" if on else ""
    if c.verdict in ("faster", "slower"):
        figure, word = factor(c)
        line = Text.assemble((cand, "bold"), f" is {figure} {word} than ", (base, "bold"), where,
                             f" ({p_phrase(c.p_value)})" if c.p_value is not None else "")
    elif c.verdict == "no significant difference":
        line = Text.assemble((cand, "bold"), " and ", (base, "bold"), where, ": no significant difference",
                             f" (ratio {ratio_text(c, ', 95 % CI ', '')}, {p_phrase(c.p_value or 1.0)})")
    elif c.verdict == "too few units":
        line = Text.assemble((cand, "bold"), " vs ", (base, "bold"), where, ": too few units to test (",
                             f"{len(c.baseline_units)} and {len(c.candidate_units)} {UNIT_TEXT[c.unit]}; "
                             f"at least 2 a side)")
    else:
        line = Text.assemble((cand, "bold"), " vs ", (base, "bold"), where, ": ", ("refused", "red"))
    shown = [d for d in c.differences if d.status in ("as-deployed", "forced")]
    for status, what in (("as-deployed", "as deployed"), ("forced", "forced, also differs in")):
        items = [f"{d.fact} {d.candidate or '?'} vs {d.baseline or '?'}" for d in shown if d.status == status]
        if items:
            line.append(f"; {what}: " + ", ".join(visible(i) for i in items), style="dim" if status != "forced" else "yellow")
    return line


def refusal(c: Comparison) -> str:
    """Why a pair was refused, for stderr: the facts that differ beyond the one compared."""
    bad = [d for d in c.differences if d.status == "refused"]
    what = ", ".join(f"{d.fact} ({d.candidate or '?'} vs {d.baseline or '?'})" for d in bad)  # as in sentence()
    compared = [PLURAL[d.fact] for d in c.differences if d.status == "compared"]
    about = f"comparing {compared[0]}, they also differ in" if compared else "they differ in"
    on = f" on {context(c)}" if context(c) else ""
    return visible(f"refused to compare {label(c, c.pair.candidate)} with {label(c, c.pair.baseline)}{on}: "
                   f"{about} {what}; compare one change at a time, or pass --force to compare them anyway")


def compare_view(comparisons: Sequence[Comparison], width: int | None, wide: bool = False) -> list[RenderableType]:
    """The table (``wide``: every column; in parts if it must be split to fit ``width``), one line
    per pair, then the legend: what the units, the test and the interval were."""
    grid = comparison_grid(comparisons).narrow(wide)
    return [*terminal.render(grid, width), *(sentence(c) for c in ordered(comparisons) if c.verdict != "refused"),
            *(Text(line, style="cyan") for line in grid.legend)]


def natural_width(comparisons: Sequence[Comparison], wide: bool) -> int:
    """How wide the table is with every cell on one line."""
    return max((part.width for part in terminal.fit(comparison_grid(comparisons).narrow(wide), None)), default=0)


def json_lines(comparisons: Iterable[Comparison]) -> Iterator[str]:
    for c in comparisons:
        yield json.dumps(c.to_json(), separators=(", ", ": "))
