"""The `harness` command: the one place that parses options, prints, and turns errors into exit codes.

Exit codes: 0 success; 1 a known error, or a benchmark of the matrix failed; 2 a bug (traceback
with --debug); 130 interrupted (Ctrl-C), 143 on SIGTERM and 129 on SIGHUP, which stop a run as
Ctrl-C does (128 + the signal's number, as a shell reports a process the signal killed).
Results go to stdout; progress, warnings and logs to stderr.
Each command is one module of this package with ``add_parser(sub)`` and its ``cmd_*`` function.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence

from rich.text import Text

from harness import __version__
from harness.cli import analyze, doctor, run, show
from harness.cli.common import stderr
from harness.errors import HarnessError, Interrupted

log = logging.getLogger("harness")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # stop like Ctrl-C: a service manager's, a closed terminal's


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
        with stop_signals():
            return int(args.func(args))
    except HarnessError as exc:
        err.print(Text.assemble(("error", "red"), f": {exc}"))
        return 1
    except KeyboardInterrupt as exc:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            err.print("interrupted")
        return 128 + Interrupted.of(exc)
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        err.print(Text.assemble(("bug", "red"), f": {type(exc).__name__}: {exc} (rerun with --debug for "
                                "the traceback, and please report it)"))
        return 2


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While the command runs, SIGTERM and SIGHUP raise Interrupted in the main thread, so that
    they stop it as Ctrl-C does: every board's agent stopped, the end lines written, run.json
    "interrupted" with the signal's name. One is enough: a repeat while harness stops (bounded
    by harness.scenarios.runner.CANCEL_GRACE_S) is ignored, so the stop itself is never cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (main() called from a worker: tests)
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not fired:
            fired.append(signum)
            raise Interrupted(signal.Signals(signum))

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
