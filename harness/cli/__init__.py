"""The `harness` command: the one place that parses options, prints, and turns errors into exit codes.

Exit codes, one meaning each: 0 success; 1 a known error (bad input, a board that failed, an I/O
failure such as a full disk or a closed stdout), or a benchmark of the matrix failed; 2 a usage
error (a bad option, as argparse reports it); 70 a bug (EX_SOFTWARE; the traceback with --debug);
130 interrupted (Ctrl-C), 143 on SIGTERM and 129 on SIGHUP, which stop a run as
Ctrl-C does (128 + the signal's number, as a shell reports a process the signal killed).
Results go to stdout; progress, warnings and logs to stderr.
Each command is one module of this package with ``add_parser(sub)`` and its ``cmd_*`` function.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence

from rich.text import Text

from harness import __version__
from harness.cli import analyze, compare, doctor, quantize, report, run, show, stream
from harness.cli.common import stderr
from harness.errors import HarnessError, Interrupted
from harness.render.text import VisibleFormatter, visible

log = logging.getLogger("harness")

EX_SOFTWARE = 70  # sysexits.h: an internal software error, i.e. a bug in harness
# I/O failures of this machine, not of harness: one line and exit 1, wherever they surface
ENVIRONMENTAL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # stop like Ctrl-C: a service manager's, a closed terminal's


# Subcommands, each adding its parser. Other commands register here.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [run.add_parser, show.add_parser,
                                                                    doctor.add_parser, analyze.add_parser,
                                                                    quantize.add_parser, compare.add_parser,
                                                                    report.add_parser, stream.add_parser]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Benchmark TFLite inference on real boards.")
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    p.add_argument("--debug", action="store_true", help="tracebacks for bugs")
    sub = p.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return p


def setup_logging(verbose: int, debug: bool) -> None:
    """Logs on stderr, names in them escaped (harness.render.text). paramiko logs each failed
    handshake at ERROR with a twenty-line traceback, then raises the exception that becomes our
    one clear line: its logger stays silent below CRITICAL unless --debug asks for everything."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(VisibleFormatter("%(levelname)s %(name)s: %(message)s"))
    # (a no-op where logging is set up already: pytest's caplog, a program calling main())
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), handlers=[handler])
    logging.getLogger("paramiko").setLevel(logging.NOTSET if debug else logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose, args.debug)
    err = stderr()
    try:
        with stop_signals():
            return int(args.func(args))
    except HarnessError as exc:
        err.print(Text.assemble(("error", "red"), f": {visible(str(exc))}"))
        return 1
    except KeyboardInterrupt as exc:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            err.print("interrupted")
        return 128 + Interrupted.of(exc)
    except BrokenPipeError:
        return closed_stdout()
    except OSError as exc:
        if exc.errno not in ENVIRONMENTAL:
            return bug(exc, args.debug)
        where = f": {exc.filename}" if exc.filename else ""
        err.print(Text.assemble(("error", "red"), f": {exc.strerror or exc}{visible(where)}"))
        return 1
    except Exception as exc:
        return bug(exc, args.debug)


def bug(exc: Exception, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    stderr().print(Text.assemble(("bug", "red"), visible(f": {type(exc).__name__}: {exc} (rerun with --debug "
                                                         "for the traceback, and please report it)")))
    return EX_SOFTWARE


def closed_stdout() -> int:
    """The reader of stdout went away (`harness run | head -1`): quietly exit 1, as tools do.

    Whatever was measured is stored already. stdout is pointed at /dev/null so that flushing it
    at exit does not raise a second time (the recipe of Python's signal documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a file descriptor (tests capture it): nothing left to flush
    return 1


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
