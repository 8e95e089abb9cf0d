"""The `harness` command: the one place that parses options, prints, and turns errors into exit codes.

Exit codes: 0 success; 1 a known error, or a benchmark of the matrix failed; 2 a bug (traceback
with --debug); 130 interrupted (Ctrl-C). Results go to stdout; progress, warnings and logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from harness import __version__, config, store
from harness.errors import ConfigError, HarnessError
from harness.modelfile import example_models
from harness.plan import Plan
from harness.render import json_lines, notes, table
from harness.summary import summarize

log = logging.getLogger("harness")

# Results are printed wide even into a pipe or file: a table wrapped at 80 columns is unreadable.
PIPE_WIDTH = 200


def _stdout() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=PIPE_WIDTH, no_color=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)  # messages are never wrapped mid-line


def _threads(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: thread counts must be positive integers")
    return values


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def _print_results(args: argparse.Namespace, meta: dict, summaries: Sequence) -> None:
    out = _stdout()
    run_id = meta.get("run_id")
    if args.json:
        for obj in json_lines(summaries, run_id):
            print(obj, flush=True)
        return
    out.print(table(summaries, title=f"harness run {run_id}" if run_id else None))
    for note in notes(summaries):
        out.print(note)


# --- harness run -------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from harness.progress import LiveProgress
    from harness.runner import Runner, plan_jobs

    targets, source = config.load_targets(args.targets)
    selected = config.select(targets, args.target or [], source)
    models = [Path(m) for m in args.model] if args.model else example_models()
    if not models:
        raise ConfigError("no models to benchmark", hint="pass --model PATH")
    plan = Plan(warmup=args.warmup, warmup_time_s=args.warmup_time, iterations=args.iterations,
                duration_s=args.duration, min_iterations=args.min_iterations, blocks=args.blocks,
                seed=args.seed, xnnpack=args.xnnpack == "on",
                inputs=args.inputs.resolve() if args.inputs else None,
                pipeline=args.pipeline.resolve() if args.pipeline else None)
    jobs, refused = plan_jobs(selected, models, args.threads, plan)
    run_store = store.RunStore(args.results)
    run_store.start({"targets_file": str(source), "plan": plan.as_dict(),
                     "targets": {t.name: t.facts() for t in selected},
                     "models": {str(j.model): j.model_sha256 for j in jobs},
                     "matrix": [{"target": j.target, "model": j.model.name, "threads": j.threads}
                                for j in [*jobs, *(j for j, _ in refused)]]})
    err = _stderr()
    err.print(f"harness {__version__}: {len(jobs) + len(refused)} benchmarks on "
              f"{', '.join(t.name for t in selected)} → {run_store.path}", markup=False)
    per_target: dict[str, int] = {}
    for j in jobs:
        per_target[j.target] = per_target.get(j.target, 0) + 1
    try:
        with LiveProgress(err, per_target) as progress:
            outcomes = Runner(run_store, selected, progress).run(jobs, refused)
    except KeyboardInterrupt:
        run_store.finish("interrupted")
        meta, benchmarks = store.load_run(run_store.path)
        _print_results(args, meta, [summarize(b) for b in benchmarks])
        err.print(Text.assemble(("interrupted", "yellow"), f": everything measured so far is in "
                                f"{run_store.path} (harness show {run_store.run_id})"))
        return 130
    failed = [o for o in outcomes if o.error is not None]
    run_store.finish("complete" if not failed else "complete_with_errors")
    _print_results(args, {"run_id": run_store.run_id}, [o.summary for o in outcomes])
    err.print(f"results: {run_store.path}", markup=False)
    if failed:
        err.print(Text(f"{len(failed)} of {len(outcomes)} benchmarks failed", style="red"))
        return 1
    return 0


# --- harness show ------------------------------------------------------------------------

def cmd_show(args: argparse.Namespace) -> int:
    path = store.resolve_run(args.results, args.run)
    meta, benchmarks = store.load_run(path)
    if not benchmarks:
        raise ConfigError(f"{path} holds no benchmarks", hint="the run was stopped before its first one")
    _print_results(args, meta, [summarize(b) for b in benchmarks])
    if meta.get("status") not in (None, "complete") and not args.json:
        _stderr().print(f"run status: {meta.get('status')}")
    return 0


# --- the parser and the one catch site ---------------------------------------------------

def _add_run(sub: argparse._SubParsersAction) -> None:
    d = Plan()
    p = sub.add_parser("run", help="benchmark models on targets",
                       description="Benchmark models × targets × thread counts, with and without Invoke.")
    p.add_argument("--targets", type=Path, help="targets file (default: ./targets.toml)")
    p.add_argument("--target", action="append", metavar="NAME", help="a target to use (repeatable; default all)")
    p.add_argument("--model", action="append", metavar="PATH", help="a .tflite model (repeatable; "
                   "default: the example models)")
    p.add_argument("--threads", type=_threads, metavar="N,M", help="thread counts, e.g. 1,2 "
                   "(default: each target's threads)")
    p.add_argument("--warmup", type=int, default=d.warmup, metavar="N", help=f"warm-up iterations (default {d.warmup})")
    p.add_argument("--warmup-time", type=float, default=d.warmup_time_s, metavar="S",
                   help=f"minimum warm-up seconds (default {d.warmup_time_s})")
    p.add_argument("--iterations", type=int, default=d.iterations, metavar="N",
                   help="iterations per mode (default: as many as --duration allows)")
    p.add_argument("--duration", type=float, default=d.duration_s, metavar="S",
                   help=f"seconds per mode when --iterations is not given (default {d.duration_s})")
    p.add_argument("--min-iterations", type=int, default=d.min_iterations, metavar="N",
                   help=f"at least this many iterations per mode (default {d.min_iterations})")
    p.add_argument("--blocks", type=int, default=d.blocks, metavar="N",
                   help=f"alternating with/without blocks (default {d.blocks})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random inputs")
    p.add_argument("--xnnpack", choices=("on", "off"), default="on", help="the default XNNPACK delegate")
    p.add_argument("--inputs", type=_existing_file, metavar="FILE", help="inputs as .npy or .npz")
    p.add_argument("--pipeline", type=_existing_file, metavar="APP.PY",
                   help="a file defining load(i), preprocess(raw), postprocess(outputs)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per benchmark")
    p.set_defaults(func=cmd_run)


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="reprint a run's results from disk")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest run)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per benchmark")
    p.set_defaults(func=cmd_show)


# --- harness doctor ----------------------------------------------------------------------

def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every selected target is ready, 1 when any has an error finding."""
    from harness.doctor import diagnose_all, ready
    from harness.doctor_view import doctor_json, doctor_summary, doctor_table

    targets, source = config.load_targets(args.targets)
    selected = config.select(targets, args.target or [], source)
    results = diagnose_all(selected)
    if args.json:
        for line in doctor_json(results):
            print(line, flush=True)
    else:
        _stdout().print(doctor_table(results))
    _stderr().print(doctor_summary(results))
    return 0 if all(ready(f) for _, f in results) else 1


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check that boards are ready, with the fix for each problem",
                       description="For each target: reachability, host key, login, python, numpy, "
                                   "TFLite runtimes, free disk, board model, CPU governor, throttling. "
                                   "Exit 0 when all are ready, 1 otherwise.")
    p.add_argument("target", nargs="*", metavar="TARGET", help="targets to check (default: all)")
    p.add_argument("--targets", type=Path, help="targets file (default: ./targets.toml)")
    p.add_argument("--json", action="store_true", help="one JSON object per target on stdout")
    p.set_defaults(func=cmd_doctor)


# --- harness analyze (issue 5: inside the model) ---------------------------------------

def _run_dir(results: Path, ref: str) -> Path:
    """The stored run that --predict-from/--profile-from name (a run id, a path, or "latest")."""
    return store.resolve_run(results, None if ref == "latest" else ref)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Per-op table of one model; --fits: its TFLite Micro arena against the MCU targets;
    --profile TARGET / --profile-from RUN: per-layer time on a board; --predict-from RUN: its
    latency predicted from what the boards of a stored run measured."""
    import json
    import tempfile

    from harness.analysis import analyze
    from harness.analysis_view import (
        analysis_renderable,
        fits_table,
        prediction_table,
        profile_lines,
        profile_table,
        validation_table,
    )

    analysis = analyze(args.model)
    fit, rows, profiles, prediction = None, [], [], None
    if args.fits or args.profile:
        targets, source = config.load_targets(args.targets)
    if args.fits:
        from harness.arena import fits_on, measure_arena

        chosen = (config.select(targets, args.target, source) if args.target
                  else [t for t in targets.values() if t.kind == "serial"])
        if not chosen:
            raise ConfigError(f"{source}: no microcontroller (kind = \"serial\") target to check the fit on",
                              hint="pass --target NAME, or add a serial target with ram and flash")
        fit = measure_arena(args.model)
        rows = fits_on(fit, chosen)
    if args.profile:
        from harness.prefixes import profile_target

        (board,) = config.select(targets, [args.profile], source)
        _stderr().print(f"timing {len(analysis.ops) + 1} prefixes of {args.model.name} on {board.name} ...")
        with tempfile.TemporaryDirectory(prefix="harness-prefixes-") as work:
            profiles = [profile_target(board, args.model, work, threads=args.threads,
                                       xnnpack=args.xnnpack == "on", rounds=args.rounds, clock=args.clock)]
    if args.profile_from:
        from harness.prefixes import firmware_profiles

        profiles = firmware_profiles(_run_dir(args.results, args.profile_from), args.model)
    if args.predict_from:
        from harness.prediction import predict

        prediction = predict(analysis, _run_dir(args.results, args.predict_from))
    if args.json:
        data = analysis.to_json()
        if prediction is not None:
            data["prediction"] = prediction.to_json()
        if fit is not None:
            data["arena"] = fit.to_json()
            data["fits_on"] = [r.to_json() for r in rows]
        if profiles:
            data["profile"] = profiles[0].to_json()  # --profile: the one board; kept for scripts
            data["profiles"] = [p.to_json() for p in profiles]
        print(json.dumps(data), flush=True)
        return 0
    out = _stdout()
    out.print(analysis_renderable(analysis))
    if fit is not None:
        out.print(fits_table(fit, rows))
        for note in fit.notes:
            out.print(f"note: {note}")
    for prof in profiles:
        out.print(profile_table(prof, args.top))
        for line in profile_lines(prof):
            out.print(line)
    if prediction is not None:
        out.print(prediction_table(analysis, prediction.throughputs, prediction.checks))
        if prediction.checks:
            out.print(validation_table(prediction.checks))
        for why in prediction.skipped:
            _stderr().print(f"left out: {why}")
    return 0


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="per-operator shapes, MACs/FLOPs, parameters and precision of a model",
                       description="Read a .tflite on the host (no board): every operator with its type, "
                                   "shapes, MACs, FLOPs (= 2 x MACs), parameters, weight bytes and precision; "
                                   "totals and the quantization scheme. --fits also measures the TFLite "
                                   "Micro arena and checks it against the ram/flash of targets.toml. "
                                   "--profile TARGET measures each layer's time on that board. "
                                   "--predict-from RUN predicts its latency from what boards measured.")
    p.add_argument("model", type=Path, help="a .tflite model")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--targets", type=Path, help="targets file for --fits/--profile (default: ./targets.toml)")
    p.add_argument("--fits", action="store_true",
                   help="measure the TFLite Micro arena and show which microcontroller targets it fits on")
    p.add_argument("--target", action="append", metavar="NAME",
                   help="a target for --fits (repeatable; default: every serial target)")
    p.add_argument("--profile", metavar="TARGET",
                   help="time every layer on this local or ssh target (by timing growing model prefixes)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for --profile (default 1)")
    p.add_argument("--xnnpack", choices=("on", "off"), default="off",
                   help="XNNPACK for --profile (default off: fused ops cannot be split into layers)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds for --profile (default 15)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or the Invoking thread's CPU time (1 thread only) for --profile")
    p.add_argument("--top", type=int, default=10, help="heaviest layers shown by --profile (default 10)")
    p.add_argument("--predict-from", metavar="RUN",
                   help="predict the model's Invoke on every board of a stored run (run id, or latest) "
                        "from each board's achieved GFLOP/s, validated leave-one-out on the run's models")
    p.add_argument("--profile-from", metavar="RUN",
                   help="per-layer times the MCU firmware's profiler measured in a stored run (run id, or latest)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results directory for --predict-from/--profile-from")
    p.set_defaults(func=cmd_analyze)


# Subcommands, each adding its parser. Other commands register here.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_run, _add_show, _add_doctor,
                                                                    _add_analyze]


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
    err = _stderr()
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
