"""`harness show`: reprint a stored run from its raw samples (a benchmark, profile or stream run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.text import Text

from harness.cli.common import above_zero, add_wide, count, print_results, stderr, stdout
from harness.errors import ConfigError
from harness.render.text import visible
from harness.results import store, stream_store
from harness.results.summary import at_rate, summarize


def cmd_show(args: argparse.Namespace) -> int:
    """The run named, of any kind; with none, the latest benchmark run."""
    path = store.resolve_run(args.results, args.run, kind=None if args.run else "benchmark")
    meta = store.load_meta(path)
    if store.run_kind(meta) == "profile":
        _show_profiles(args, path)
    elif store.run_kind(meta) == "stream":
        from harness.cli.stream import print_streams

        meta, streams = stream_store.load_streams(path)
        if not streams:
            raise ConfigError(f"{path} holds no streams", hint="the run was stopped before its first one")
        print_streams(args, meta.get("run_id") or path.name, streams)
    else:
        meta, benchmarks = store.load_run(path)
        if not benchmarks:
            raise ConfigError(f"{path} holds no benchmarks", hint="the run was stopped before its first one")
        summaries = [summarize(b) for b in benchmarks]
        if args.rate is not None:  # another rate than the run's own (its plan's rate_hz)
            summaries = [at_rate(s, args.rate) for s in summaries]
        print_results(args, meta, summaries)
    if meta.get("status") not in (None, "complete") and not args.json:
        why = f" ({meta['error']})" if meta.get("error") else ""
        stderr().print(f"run status: {meta.get('status')}{why}", markup=False)
    return 0


def _show_profiles(args: argparse.Namespace, path: Path) -> None:
    """A profile run: each stored profile recomputed from its raw rounds, as `harness analyze
    --profile` printed it."""
    from harness.render.analysis import profile_lines, profile_table
    from harness.results.layers import stored_profiles

    records = stored_profiles(path)
    if not records:
        raise ConfigError(f"{path} holds no profiles", hint="the run was stopped before its first one")
    if args.json:
        for r in records:
            print(json.dumps(r.to_json()), flush=True)
        return
    out = stdout()
    for r in records:
        if r.profile is not None:
            out.print(profile_table(r.profile, args.top))
            for line in profile_lines(r.profile):
                out.print(line)
        if r.error is not None:
            out.print(_error_line(r.target, r.model, r.error))


def _error_line(target: str, model: str, error: dict[str, Any]) -> Text:
    hint = error.get("hint")
    return Text.assemble((visible(f"{target} · {model}: "), "bold"), ("error: ", "bold red"),
                         visible(str(error.get("message"))), visible(f" (fix: {hint})") if hint else "")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="reprint a run's results from disk")
    p.add_argument("run", nargs="?", help="run id or directory, of any kind (default: the latest benchmark run)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout, one per benchmark (one per profile of a profile run, one "
                        "per stream of a stream run)")
    add_wide(p)
    p.add_argument("--rate", type=above_zero, metavar="HZ",
                   help="the duty cycle at this rate in inferences per second (default: the run's --rate)")
    p.add_argument("--top", type=count, default=10, help="heaviest layers shown of a profile run (default 10)")
    p.set_defaults(func=cmd_show)
