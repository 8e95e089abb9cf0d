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
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from harness.render import energy
from harness.render.results import natural_width, results_view
from harness.render.table import json_lines
from harness.results import store

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


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def count(text: str) -> int:
    """An integer >= 0 (a count where 0 means none, or "derive it", as --iterations 0 does)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: give 0 or more")
    return value


def positive(text: str) -> int:
    """An integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give 1 or more")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0 (a percentage, a rate, seconds that cannot be 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number above 0")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds >= 0 (never nan or inf, which no deadline can use)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text}: give a finite number of seconds, 0 or more")
    return value


def add_wide(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true",
                   help="every column of the results table (runtime, init, first Invoke, loop tails, …)")


def print_results(args: argparse.Namespace, meta: dict, summaries: Sequence) -> None:
    run_id = meta.get("run_id")
    if args.json:
        for obj in json_lines(summaries, run_id):
            print(obj, flush=True)
        return
    out = stdout()
    wide = bool(getattr(args, "wide", False))
    title = f"harness run {run_id}" if run_id else None
    if out.is_terminal:
        view = results_view(summaries, title, wide, out.width) + energy.energy_view(summaries, wide, out.width)
    else:
        width = None if wide else TABLE_WIDTH
        view = results_view(summaries, title, wide, width) + energy.energy_view(summaries, wide, width)
        out = Console(width=max(PIPE_WIDTH, natural_width(summaries, wide), energy.natural_width(summaries, wide)),
                      no_color=True)
    for item in view:
        out.print(item, soft_wrap=isinstance(item, Text) and not out.is_terminal, highlight=False)


def run_dir(results: Path, ref: str) -> Path:
    """The stored run that --predict-from/--profile-from name (a run id, a path, or "latest")."""
    return store.resolve_run(results, None if ref == "latest" else ref)

