"""`harness run`: benchmark models x targets x thread counts, with and without Invoke."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from harness import __version__, config
from harness.cli.common import (
    above_zero,
    add_wide,
    count,
    existing_file,
    points,
    pool_tags,
    positive,
    print_results,
    python_file,
    seconds,
    stderr,
    threads_list,
    with_pools,
)
from harness.errors import ConfigError, HarnessError, Interrupted
from harness.models.files import example_models
from harness.models.micro import UNSUPPORTED_CODE
from harness.plan import MIN_STABLE_PROCESSES, STABLE_DURATION_S, EvalPlan, Plan
from harness.render.text import visible
from harness.results import store
from harness.results.summary import summarize
from harness.results.variants import COLLAPSE_POINTS, Judged

if TYPE_CHECKING:
    from harness.scenarios.benchmark import Outcome


def cmd_run(args: argparse.Namespace) -> int:
    from harness.render.progress import LiveProgress
    from harness.scenarios.benchmark import BenchmarkScenario, plan_jobs, prepare_eval
    from harness.scenarios.runner import Runner
    from harness.scenarios.variants import variant_matrix

    sizing = process_options(args)  # usage errors before anything starts
    targets, source = config.load_targets(args.targets)
    selected = config.select(targets, args.target or [], source)
    selected = lab_options(args, with_pools(targets, selected, args.pool or [], bool(args.target)))
    given = [Path(m) for m in args.model] if args.model else [] if args.variants else example_models()
    matrix = variant_matrix(given, args.variants, args.collapse_threshold)
    models = list(matrix.models)
    if not models:
        raise ConfigError("no models to benchmark", hint="pass --model PATH")
    err = stderr()
    for note in matrix.notes:
        err.print(Text.assemble(("note", "cyan"), ": ", visible(note)))
    plan = Plan(warmup=args.warmup, warmup_time_s=args.warmup_time, min_iterations=args.min_iterations,
                blocks=args.blocks, seed=args.seed, xnnpack=args.xnnpack == "on",
                inputs=args.inputs.resolve() if args.inputs else None,
                pipeline=args.pipeline.resolve() if args.pipeline else None,
                eval=eval_plan(args, matrix.compares), **sizing)
    jobs, refused = plan_jobs(selected, models, args.threads, plan)
    run_store = store.RunStore(args.results, kind="benchmark")
    if plan.eval is not None:  # each model's samples, kept with the run (what the boards were fed)
        jobs, unfit = prepare_eval(jobs, run_store.path / "eval", matrix.domain)
        refused = [*refused, *unfit]
    run_store.start({"targets_file": str(source), "plan": plan.as_dict(),
                     "targets": {t.name: t.facts() for t in selected},
                     "models": {str(j.model): j.model_sha256 for j in jobs},
                     "matrix": [{"target": j.target, "model": j.model.name, "threads": j.threads}
                                for j in [*jobs, *(j for j, _ in refused)]],
                     **(matrix.variants.as_meta() if matrix.variants.infos else {})})
    err.print(visible(f"harness {__version__}: {len(jobs) + len(refused)} benchmarks on "
                      f"{', '.join(t.name for t in selected)} → {run_store.path}"), markup=False)
    per_target: dict[str, int] = {}
    for j in jobs:
        per_target[j.target] = per_target.get(j.target, 0) + 1
    try:
        with LiveProgress(err, per_target) as progress:
            runner = Runner(run_store, selected, BenchmarkScenario(matrix.variants), progress)
            outcomes = runner.run(jobs, refused)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (harness.cli.stop_signals)
        return _interrupted(args, run_store, Interrupted.of(exc))
    except HarnessError as exc:
        run_store.fail(str(exc))  # run.json says how the run ended, not "running"
        raise
    except Exception as exc:
        run_store.fail(f"bug: {type(exc).__name__}: {exc}")
        raise
    # a pool job that failed on one board and ran again on another is the second attempt's; a
    # model unsupported on a board is a result, not a failure
    failed = [o for o in outcomes if o.error is not None and not runner.moved(o) and o.error.code != UNSUPPORTED_CODE]
    run_store.finish("complete" if not failed else "complete_with_errors")
    judged = print_results(args, {"run_id": run_store.run_id}, [o.summary for o in outcomes], matrix.variants)
    err.print(f"results: {run_store.path}", markup=False)
    return exit_status(err, outcomes, failed, [j for j in judged if j.collapse is not None])


def eval_plan(args: argparse.Namespace, compares: bool) -> EvalPlan | None:
    """The evaluation pass: on the --eval file; for a run that compares variants with their
    bases, always, on the timed loop's inputs (--inputs, else its seeded random data)."""
    if args.eval:
        return EvalPlan("file", args.eval.resolve())
    if not compares:
        return None
    return EvalPlan("inputs", args.inputs.resolve()) if args.inputs else EvalPlan("random")


def exit_status(err: Console, outcomes: Sequence[Outcome], failed: Sequence[Outcome],
                collapsed: Sequence[Judged]) -> int:
    """1 when a benchmark failed, a variant collapsed, or nothing could run at all (every model
    unsupported on its board); else 0: a model unsupported on one board is a result of the
    matrix, not a failure."""
    status = 0
    if failed:
        err.print(Text(f"{len(failed)} of {len(outcomes)} benchmarks failed", style="red"))
        status = 1
    if collapsed:
        where: dict[str, list[str]] = {}
        for j in collapsed:
            where.setdefault(j.summary.benchmark.model, []).append(j.summary.benchmark.target)
        listed = "; ".join(f"{m} on {', '.join(dict.fromkeys(t))}" for m, t in where.items())
        err.print(Text(f"accuracy collapse against the float32 base on the same board: {visible(listed)} "
                       "(never a speed-up; the lines under the tables say why)", style="bold red"))
        status = 1
    if outcomes and all(o.error is not None and o.error.code == UNSUPPORTED_CODE for o in outcomes):
        err.print(Text("nothing ran: every model is unsupported on its board", style="red"))
        status = 1
    return status


def _interrupted(args: argparse.Namespace, run_store: store.RunStore, sig: signal.Signals) -> int:
    """The run stopped by ``sig`` (its agents already stopped by the runner): run.json says so,
    what was measured is shown; the exit status is 128 + the signal (130 for Ctrl-C)."""
    run_store.finish("interrupted", signal=sig.name)
    meta, benchmarks = store.load_run(run_store.path)
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone: run.json is written
        print_results(args, meta, [summarize(b) for b in benchmarks])
        stderr().print(Text.assemble(("interrupted", "yellow"), f": everything measured so far is in "
                                     f"{run_store.path} (harness show {run_store.run_id})"))
    return 128 + sig


def lab_options(args: argparse.Namespace, targets: list[config.Target]) -> list[config.Target]:
    """--reserve and --wait applied to the labgrid targets (a usage error without any)."""
    if args.reserve is False and args.wait is None:
        return targets
    if not any(isinstance(t.options, config.LabgridOptions) for t in targets):
        args.run_parser.error("--reserve and --wait apply to labgrid targets (kind = \"labgrid\" or --pool), "
                              "and none is selected")
    out = []
    for t in targets:
        if isinstance(t.options, config.LabgridOptions):
            wait_s = t.options.wait_s if args.wait is None else args.wait
            t = replace(t, options=replace(t.options, reserve=t.options.reserve or args.reserve, wait_s=wait_s))
        out.append(t)
    return out


def process_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Plan fields that size a benchmark: --iterations, --duration, --processes, --until-stable
    and --max-duration, checked (a usage error exits 2, as argparse does). --iterations and
    --duration default to None, so that giving them with --until-stable is seen even at their
    default values."""
    d = Plan()
    stable = args.until_stable is not None
    clash = [name for name, value in (("--iterations", args.iterations), ("--duration", args.duration))
             if value is not None]
    if stable and clash:
        args.run_parser.error(f"--until-stable cannot be given with {' or '.join(clash)}: it sizes each "
                              "process itself and adds processes until the interval is narrow enough")
    if args.max_duration is not None and not stable:
        args.run_parser.error("--max-duration bounds --until-stable; give it with --until-stable PCT")
    processes = args.processes if args.processes is not None else (MIN_STABLE_PROCESSES if stable else 1)
    if not stable:
        return {"processes": processes,
                "iterations": d.iterations if args.iterations is None else args.iterations,
                "duration_s": d.duration_s if args.duration is None else args.duration}
    if processes < MIN_STABLE_PROCESSES:
        args.run_parser.error(f"--processes {processes}: --until-stable needs at least {MIN_STABLE_PROCESSES} "
                              "processes (a 95 % interval from fewer medians is too wide to stop on)")
    return {"processes": processes, "until_stable_pct": args.until_stable, "iterations": 0,
            "duration_s": STABLE_DURATION_S,
            "max_duration_s": d.max_duration_s if args.max_duration is None else args.max_duration}


def _add_process_options(p: argparse.ArgumentParser) -> None:
    d = Plan()
    p.add_argument("--processes", type=positive, metavar="N",
                   help="run each benchmark in N processes one after the other (fresh agents; on a "
                        "microcontroller the model loaded again); the interval of the median Invoke "
                        "comes from their medians (default 1; with --until-stable at least and by "
                        f"default {MIN_STABLE_PROCESSES})")
    p.add_argument("--until-stable", type=above_zero, metavar="PCT",
                   help="add processes until the 95 %% interval of the median Invoke is within ±PCT %% "
                        f"of it (each process runs {STABLE_DURATION_S:g} s per mode); replaces "
                        "--duration and --iterations")
    p.add_argument("--max-duration", type=above_zero, metavar="S",
                   help=f"with --until-stable: wall seconds per benchmark at most (default {d.max_duration_s:g})")
    # None: seen as "not given", which --until-stable needs to know (process_options fills them in)
    p.set_defaults(iterations=None, duration=None, run_parser=p)


def _add_lab_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", action="append", type=pool_tags, metavar="TAG=VALUE[,…]",
                   help="a board pool: every free labgrid place with these tags runs a share of the "
                        "matrix (repeatable; the keys of the labgrid target with pool = the same tags; "
                        "without --target, only the pools run)")
    p.add_argument("--reserve", action="store_true",
                   help="labgrid places: queue for each with a reservation instead of acquiring it at once")
    p.add_argument("--wait", type=seconds, metavar="SECONDS",
                   help="labgrid places: wait up to SECONDS for a place someone else holds "
                        "(default 0: refuse at once; 300 with --reserve)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = Plan()
    p = sub.add_parser("run", help="benchmark models on targets",
                       description="Benchmark models × targets × thread counts, with and without Invoke.")
    p.add_argument("--targets", type=Path, help="targets file (default: ./targets.toml)")
    p.add_argument("--target", action="append", metavar="NAME", help="a target to use (repeatable; default all)")
    p.add_argument("--model", action="append", metavar="PATH", help="a .tflite model (repeatable; "
                   "default: the example models)")
    p.add_argument("--threads", type=threads_list, metavar="N,M", help="thread counts, e.g. 1,2 "
                   "(default: each target's threads)")
    p.add_argument("--warmup", type=count, default=d.warmup, metavar="N", help=f"warm-up iterations (default {d.warmup})")
    p.add_argument("--warmup-time", type=seconds, default=d.warmup_time_s, metavar="S",
                   help=f"minimum warm-up seconds (default {d.warmup_time_s})")
    p.add_argument("--iterations", type=count, default=d.iterations, metavar="N",
                   help="iterations per mode (default: as many as --duration allows)")
    p.add_argument("--duration", type=seconds, default=d.duration_s, metavar="S",
                   help=f"seconds per mode when --iterations is not given (default {d.duration_s})")
    p.add_argument("--min-iterations", type=count, default=d.min_iterations, metavar="N",
                   help=f"at least this many iterations per mode (default {d.min_iterations})")
    p.add_argument("--blocks", type=positive, default=d.blocks, metavar="N",
                   help=f"alternating with/without blocks (default {d.blocks})")
    p.add_argument("--seed", type=count, default=d.seed, help="seed of the random inputs (0 or more)")
    p.add_argument("--xnnpack", choices=("on", "off"), default="on", help="the default XNNPACK delegate")
    p.add_argument("--inputs", type=existing_file, metavar="FILE", help="inputs as .npy or .npz")
    p.add_argument("--pipeline", type=python_file, metavar="APP.PY",
                   help="a file defining load(i), preprocess(raw), postprocess(outputs)")
    p.add_argument("--eval", type=existing_file, metavar="FILE.npz",
                   help="after the timed part, run every sample of FILE once on the board (arrays x "
                        "and y, or keyed by input name plus y) and report top-1 accuracy from the "
                        "outputs the board returned")
    p.add_argument("--variants", type=Path, metavar="DIR",
                   help="also run the variants in DIR (harness quantize --out DIR) and their float32 bases, "
                        "found through their recipe files; one table per board compares each with its base")
    p.add_argument("--collapse-threshold", type=points, default=COLLAPSE_POINTS, metavar="PTS",
                   help="a variant whose top-1 accuracy is more than PTS points below its base's on the same "
                        f"board is collapsed: flagged, never a speed-up, exit status 1 (default {COLLAPSE_POINTS:g})")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per benchmark")
    add_wide(p)
    _add_lab_options(p)
    _add_process_options(p)
    p.set_defaults(func=cmd_run)

