"""`harness compare`: stored benchmarks against each other, with honest uncertainty, and the CI gate.

Exit status: 0 when every pair was compared and no gate failed; 1 when a pair was refused (its
sides differ in more than the one thing compared; --force compares them anyway) or a candidate is
significantly slower than its baseline by more than --fail-if-slower PCT, or a run cannot be
used; 2 for a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from harness.cli.common import PIPE_WIDTH, TABLE_WIDTH, percent, stderr, stdout
from harness.errors import ConfigError
from harness.render.compare import compare_view, json_lines, natural_width, refusal, sentence
from harness.render.text import visible
from harness.results import pairing, store
from harness.results.compare import METRICS, Comparison, Pair, compare, run_sides
from harness.results.stream import StreamRecord


def cmd_compare(args: argparse.Namespace) -> int:
    pairs = _pairs(args)
    metric = args.metric or ("latency" if isinstance(pairs[0].baseline.benchmark, StreamRecord) else "invoke")
    comparisons = [compare(p, metric, args.force) for p in pairs]
    if args.json:
        for line in json_lines(comparisons):
            print(line, flush=True)
    else:
        _print(comparisons, args.wide)
    err = stderr()
    refused = [c for c in comparisons if c.refused]
    for c in refused:
        err.print(Text.assemble(("error", "red"), ": ", refusal(c)))
    slower = [c for c in comparisons if args.fail_if_slower is not None and c.slower_than(args.fail_if_slower)]
    for c in slower:
        err.print(Text.assemble(("regression", "red"), ": ", sentence(c),
                                f": more than --fail-if-slower {args.fail_if_slower:g} %"))
    return 1 if refused or slower else 0


def _pairs(args: argparse.Namespace) -> list[Pair]:
    """The pairs the arguments ask for (usage errors exit 2), with a warning for what has no partner."""
    usage = args.compare_parser.error
    if args.within is not None:
        if args.runs:
            usage("--within compares inside one run: give no other runs with it")
        by = args.by or "board"
        sides = run_sides(store.resolve_run(args.results, args.within, kind=None), recipes=by == "variant")
        pairs, notes = pairing.within(sides, by)
        what = f"run {args.within} by {by}"
    else:
        if args.by is not None:
            usage("--by goes with --within RUN")
        if len(args.runs) < 2:
            usage("give a baseline run and at least one candidate run, or --within RUN")
        runs = [run_sides(store.resolve_run(args.results, ref, kind=None)) for ref in args.runs]
        pairs, notes = pairing.across_runs(runs[0], runs[1:])
        what = "these runs"
    err = stderr()
    for note in notes:
        err.print(Text.assemble(("warning", "yellow"), ": ", visible(note)))
    if not pairs:
        raise ConfigError(f"nothing to compare in {what}: no two benchmarks match",
                          hint="runs are matched by target, model file name and threads; --within RUN "
                               "--by board|threads|variant compares inside one run")
    return pairs


def _print(comparisons: list[Comparison], wide: bool) -> None:
    """The table and lines on stdout: fitted to a terminal, or laid out for TABLE_WIDTH columns
    into a file or a pipe (--wide: at its natural width) with each line under it whole, as the
    results table is."""
    out = stdout()
    if out.is_terminal:
        for item in compare_view(comparisons, out.width, wide):
            out.print(item, highlight=False)
        return
    plain = Console(width=max(PIPE_WIDTH, natural_width(comparisons, wide)), no_color=True)
    for item in compare_view(comparisons, None if wide else TABLE_WIDTH, wide):
        plain.print(item, soft_wrap=isinstance(item, Text), highlight=False)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare stored runs, boards, thread counts or variants",
                       description="Compare benchmarks: the first run is the baseline, each other run a "
                                   "candidate; or, with --within, inside one run.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids or directories: the baseline, then candidates")
    p.add_argument("--within", metavar="RUN", help="compare inside this run instead")
    p.add_argument("--by", choices=("board", "variant", "threads"),
                   help="with --within: each board against the first (default), each model against the "
                        "first, or each thread count against the first, per model")
    p.add_argument("--metric", choices=tuple(METRICS),
                   help="benchmarks: invoke, the Invoke time (default), or loop, the whole loop with Invoke; "
                        "streams: latency, each window's median latency from the schedule (default), or p99")
    p.add_argument("--force", action="store_true",
                   help="compare pairs that differ in more than the one thing compared (the output names it)")
    p.add_argument("--fail-if-slower", type=percent, metavar="PCT",
                   help="exit 1 when a candidate is significantly slower than its baseline by more than PCT %%")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per pair")
    p.add_argument("--wide", action="store_true", help="every column: the ratio with its interval, the units")
    p.set_defaults(func=cmd_compare, compare_parser=p)
