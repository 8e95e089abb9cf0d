"""The `harness` command: the one place that parses options, prints, and turns errors into exit codes.

Exit codes: 0 success; 1 a known error, or a benchmark of the matrix failed; 2 a bug (traceback
with --debug); 130 interrupted (Ctrl-C). Results go to stdout; progress, warnings and logs to stderr.
Each command is one module of this package with ``add_parser(sub)`` and its ``cmd_*`` function.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from rich.text import Text

from harness import __version__
from harness.cli import analyze, doctor, run, show
from harness.cli.common import stderr
from harness.errors import HarnessError

log = logging.getLogger("harness")


# Subcommands, each adding its parser. Other commands register here.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [run.add_parser, show.add_parser,
                                                                    doctor.add_parser, analyze.add_parser]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Benchmark TFLite inference on real boards.")
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    p.add_argument("--debug", action="store_true", help="tracebacks for bugs")
    sub = p.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    err = stderr()
    try:
        return int(args.func(args))
    except HarnessError as exc:
        err.print(Text.assemble(("error", "red"), f": {exc}"))
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        err.print(Text.assemble(("bug", "red"), f": {type(exc).__name__}: {exc} (rerun with --debug for "
                                "the traceback, and please report it)"))
        return 2

