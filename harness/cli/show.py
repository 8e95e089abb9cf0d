"""`harness show`: reprint a stored run from its raw samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import print_results, stderr
from harness.errors import ConfigError
from harness.results import store
from harness.results.summary import summarize


def cmd_show(args: argparse.Namespace) -> int:
    path = store.resolve_run(args.results, args.run)
    meta, benchmarks = store.load_run(path)
    if not benchmarks:
        raise ConfigError(f"{path} holds no benchmarks", hint="the run was stopped before its first one")
    print_results(args, meta, [summarize(b) for b in benchmarks])
    if meta.get("status") not in (None, "complete") and not args.json:
        stderr().print(f"run status: {meta.get('status')}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="reprint a run's results from disk")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest run)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per benchmark")
    p.set_defaults(func=cmd_show)

