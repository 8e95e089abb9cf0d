"""What every command shares: the two consoles, argument types, and printing benchmark results.

stdout carries results only (tables, JSON lines); progress, warnings and logs go to stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from harness.render.table import json_lines, notes, table
from harness.results import store

PIPE_WIDTH = 200


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


def print_results(args: argparse.Namespace, meta: dict, summaries: Sequence) -> None:
    out = stdout()
    run_id = meta.get("run_id")
    if args.json:
        for obj in json_lines(summaries, run_id):
            print(obj, flush=True)
        return
    out.print(table(summaries, title=f"harness run {run_id}" if run_id else None))
    for note in notes(summaries):
        out.print(note)


def run_dir(results: Path, ref: str) -> Path:
    """The stored run that --predict-from/--profile-from name (a run id, a path, or "latest")."""
    return store.resolve_run(results, None if ref == "latest" else ref)

