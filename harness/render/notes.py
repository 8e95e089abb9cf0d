"""The lines under the results table: a line per board pool (its boards, a failed board and where
its jobs moved, whether the boards are identical), a short verdict per row, one line per failed
row with its fix, and one line per kind of warning that names the rows it concerns,
hyperfine-style with the option that helps. Each is one logical line; the terminal wraps it at
word boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich.text import Text

from harness.render.table import label
from harness.render.text import visible
from harness.results.pools import describe, pool_reports
from harness.results.summary import BenchmarkSummary, advice


def notes(summaries: Sequence[BenchmarkSummary]) -> Iterator[Text]:
    """Pools, verdicts, then errors, then grouped warnings."""
    yield from pools(summaries)
    yield from verdicts(summaries)
    yield from errors(summaries)
    yield from warnings(summaries)


def pools(summaries: Sequence[BenchmarkSummary]) -> Iterator[Text]:
    """Per pool: how many benchmarks each board ran, which board failed and where its jobs went,
    and whether the boards are identical (else which differ: their rows are not one pool's)."""
    for r in pool_reports(summaries):
        runs = ", ".join(f"{place} ({n})" for place, n in r.runs.items())
        line = f"{sum(r.runs.values())} benchmarks on {runs}"
        for place in r.failures:  # (why: on the failed row's error line, below)
            moved = ", ".join(f"{job} moved to {to}" for job, frm, to in r.moves if place in frm)
            line += f"; {place} failed: {moved}"
        if r.identical and r.identities:
            (ident, places), = r.identities.items()
            line += f"; {len(places)} identical boards: {describe(ident)}"
        elif r.identities:
            groups = "; ".join(f"{', '.join(places)}: {describe(i)}" for i, places in r.identities.items())
            line += f"; boards differ, so their rows are not one pool's: {groups}"
        yield Text.assemble((f"pool {visible(r.pool)}", "bold"), ": ", visible(line))


def verdicts(summaries: Sequence[BenchmarkSummary]) -> Iterator[Text]:
    """What each measured row means; its share is in the table, so the line says what it implies."""
    for s in summaries:
        if s.with_invoke is not None:
            yield Text.assemble((label(s), "bold"), ": ", advice(s.inference_share, s.max_speedup_from_model))


def errors(summaries: Sequence[BenchmarkSummary]) -> Iterator[Text]:
    for s in summaries:
        error = s.benchmark.error
        if error is not None:
            hint = error.get("hint")
            yield Text.assemble((label(s), "bold"), ": ", ("error: ", "bold red"), visible(str(error.get("message"))),
                                f" (fix: {hint})" if hint else "")


def warnings(summaries: Sequence[BenchmarkSummary]) -> Iterator[Text]:
    """One line per kind of finding (its code, title and hint), listing each row with its figure;
    the kinds of one code (unstable from outliers, unstable from a broad spread) next to each other."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for s in summaries:
        for f in s.findings:
            rows = groups.setdefault((f.code, f.title or f.message, f.hint), [])
            rows.append(f"{label(s)} ({f.detail})" if f.detail else label(s))
    codes = list(dict.fromkeys(code for code, _, _ in groups))
    for (_, title, hint), rows in sorted(groups.items(), key=lambda g: codes.index(g[0][0])):  # stable
        yield Text.assemble(("warning: ", "yellow"), title, ": ", ", ".join(rows), (f" → {hint}", "dim"))
