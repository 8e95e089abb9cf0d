"""What every command shares: the two consoles, argument types, and printing benchmark results.

stdout carries results only (tables, JSON lines); progress, warnings and logs go to stderr.

Widths: on a terminal, the results table fits the terminal (the default columns fit 100 with
nothing cut; harness.render.terminal wraps names, or splits a table narrower than that). When
stdout is a file or a pipe there is no width to fit, so the results table is laid out for
TABLE_WIDTH = 100 columns, the width the default table promises (a CI log, an editor, `less`
show it as on a terminal), and `--wide` at its natural width, every column on one line; the
lines under it are never wrapped there, so grep finds each whole. Other commands' tables are
printed PIPE_WIDTH wide into a pipe.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from harness import config
from harness.render.results import run_view, run_width
from harness.render.table import json_lines
from harness.results import store
from harness.results.summary import BenchmarkSummary
from harness.results.variants import Judged, VariantSet

PIPE_WIDTH = 200
TABLE_WIDTH = 100


def stdout() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=PIPE_WIDTH, no_color=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)  # messages are never wrapped mid-line


def threads_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: thread counts must be positive integers")
    return values


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def python_file(text: str) -> Path:
    """An existing .py file (a pipeline: the board imports it as a module)."""
    path = existing_file(text)
    if path.suffix != ".py":
        raise argparse.ArgumentTypeError(f"{text}: not a .py file (a pipeline is a Python module "
                                         "defining load(i), preprocess(raw) or postprocess(outputs))")
    return path


def _parse(text: str, convert: Callable[[str], Any], what: str, ok: Callable[[Any], bool] = lambda _v: True,
           fix: str = "") -> Any:
    """``convert(text)``, refused with argparse's one line when it is not a number, is nan or inf
    (no deadline can use them), or fails ``ok`` (then ``fix`` is the message)."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: give a finite {what.removeprefix('a ')}")
    if not ok(value):
        raise argparse.ArgumentTypeError(fix.format(text=text))
    return value


def count(text: str) -> int:
    """An integer >= 0 (a count where 0 means none, or "derive it", as --iterations 0 does)."""
    return int(_parse(text, int, "an integer", lambda v: v >= 0, "{text} is negative: give 0 or more"))


def positive(text: str) -> int:
    """An integer >= 1."""
    return int(_parse(text, int, "an integer", lambda v: v >= 1, "{text}: give 1 or more"))


def seconds(text: str) -> float:
    """A finite number of seconds >= 0."""
    return float(_parse(text, float, "a number of seconds", lambda v: v >= 0,
                        "{text}: give a finite number of seconds, 0 or more"))


def above_zero(text: str) -> float:
    """A finite number > 0 (a percentage to reach, a time bound)."""
    return float(_parse(text, float, "a number", lambda v: v > 0, "{text!r}: give a finite number above 0"))


def percent(text: str) -> float:
    """A finite percentage >= 0."""
    return float(_parse(text, float, "a number of percent", lambda v: v >= 0,
                        "{text}: give a finite percentage, 0 or more"))


def points(text: str) -> float:
    """Accuracy points, from 0 to 100 (--collapse-threshold)."""
    return float(_parse(text, float, "a number of points", lambda v: 0 <= v <= 100,
                        "{text}: give accuracy points from 0 to 100"))


def pool_tags(text: str) -> tuple[tuple[str, str], ...]:
    """--pool TAG=VALUE[,TAG=VALUE]: the tags of a board pool's places."""
    try:
        return config.parse_tags(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} {exc}") from None


def with_pools(targets: dict[str, config.Target], selected: list[config.Target],
               pools: list[tuple[tuple[str, str], ...]], named: bool) -> list[config.Target]:
    """The targets to use with --pool: each pool is the labgrid target of targets.toml with those
    tags (``pool = "board=rpi4"``, which holds its keys), else a pool of the coordinator's
    defaults, named after its tags. Without --target (``named``), --pool uses the pools only."""
    out = list(selected) if named or not pools else []
    for tags in pools:
        known = [t for t in targets.values()
                 if isinstance(t.options, config.LabgridOptions) and t.options.pool == tags]
        adhoc = config.LabgridOptions(pool=tags)
        pool = known[0] if known else config.Target(name=adhoc.pool_name, kind="labgrid", options=adhoc)
        if pool.name not in {t.name for t in out}:
            out.append(pool)
    return out


def add_wide(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true",
                   help="every column of the results table (runtime, init, first Invoke, loop tails, …)")


def print_results(args: argparse.Namespace, meta: dict, summaries: Sequence[BenchmarkSummary],
                  variants: VariantSet | None = None) -> list[Judged]:
    """Print a run's results (JSON lines with --json, else the tables), each benchmark judged
    against its base run when it is a variant (``variants``, else those recorded in ``meta``);
    returns the judgements."""
    run_id = meta.get("run_id")
    judged = (variants if variants is not None else VariantSet.from_meta(meta)).judge_all(summaries)
    if args.json:
        for obj in json_lines(judged, run_id):
            print(obj, flush=True)
        return judged
    out = stdout()
    wide = bool(getattr(args, "wide", False))
    if out.is_terminal:
        view = run_view(judged, run_id, wide, out.width)
    else:
        view = run_view(judged, run_id, wide, None if wide else TABLE_WIDTH)
        out = Console(width=max(PIPE_WIDTH, run_width(judged, wide)), no_color=True)
    for item in view:
        out.print(item, soft_wrap=isinstance(item, Text) and not out.is_terminal, highlight=False)
    return judged


def run_dir(results: Path, ref: str) -> Path:
    """The stored run that --predict-from/--profile-from name (a run id, a path, or "latest")."""
    return store.resolve_run(results, None if ref == "latest" else ref)

