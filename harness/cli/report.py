"""`harness report RUN… -o report.html`: stored runs as one self-contained HTML page (and its
Markdown version, and with --csv a CSV file per table). Reads the result store only, never a board.

Exit status: 0 when the files were written; 1 when a run cannot be read, matplotlib (the
``report`` extra) is missing, or a file cannot be written; 2 for a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import count, stdout
from harness.errors import ConfigError
from harness.render import plots
from harness.render.report import Options, build, csv_files, html_page, markdown_page, write
from harness.render.report_model import load
from harness.results import store


def cmd_report(args: argparse.Namespace) -> int:
    plots.require()  # before reading anything: one line with the install command
    paths = [store.resolve_run(args.results, ref, kind=None) for ref in args.runs] or [
        store.resolve_run(args.results, None, kind="benchmark")]
    if len(set(map(Path.resolve, paths))) != len(paths):
        args.report_parser.error("a run is given twice")
    material = load(paths)
    sections = build(material, Options(by=args.by, metric=args.metric, top=args.top))
    out: Path = args.output
    md = args.md or out.with_suffix(".md")
    if md.resolve() == out.resolve():
        args.report_parser.error(f"--md {md} would overwrite the HTML report")
    written = [(out, _write(out, html_page(material, sections))),
               (md, _write(md, markdown_page(material, sections)))]
    if args.csv is not None:
        _mkdir(args.csv)
        written += [(args.csv / name, _write(args.csv / name, text))
                    for name, text in csv_files(sections).items()]
    console = stdout()
    for path, size in written:
        console.print(f"{path} ({_size(size)})", markup=False, highlight=False)
    return 0


def _write(path: Path, text: str) -> int:
    try:
        return write(path, text)
    except OSError as exc:
        raise store.io_error("write", path, exc) from exc


def _mkdir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--csv {path}: not a directory", hint="pass --csv DIR naming a directory (it is created "
                                                                 "if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store.io_error("create", path, exc) from exc


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def _html_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".html", ".htm"):
        raise argparse.ArgumentTypeError(f"{text}: give an .html file name (the Markdown version goes beside it)")
    return path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write stored runs as one self-contained HTML report (and Markdown, CSV)",
                       description="Write stored runs as one self-contained HTML page that works offline: "
                                   "tables, latency distributions, the bottleneck, per-layer time, variants, "
                                   "energy and cost, comparisons. Benchmark runs and profile runs may be mixed.")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run ids or directories, of any kind (default: the latest benchmark run); the first "
                        "benchmark run is the baseline of the comparisons")
    p.add_argument("-o", "--output", type=_html_path, default=Path("report.html"),
                   help="the HTML file (default report.html)")
    p.add_argument("--md", type=Path, metavar="FILE", help="the Markdown version (default: the HTML file's name "
                                                           "with .md)")
    p.add_argument("--csv", type=Path, metavar="DIR", help="also write each table as a CSV file into DIR")
    p.add_argument("--by", choices=("board", "variant", "threads"),
                   help="compare within each run by this (default: between the runs given, or within a single "
                        "run by board, else threads, else variant)")
    p.add_argument("--metric", choices=("invoke", "loop"), default="invoke",
                   help="what the comparisons compare: the Invoke time (default) or the whole loop")
    p.add_argument("--top", type=count, default=10, help="heaviest layers shown per profile (default 10)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.set_defaults(func=cmd_report, report_parser=p)

