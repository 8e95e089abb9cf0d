"""`harness analyze`: inside the model: FLOPs, per-layer time, prediction, fit."""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from harness import config
from harness.cli.common import TABLE_WIDTH, above_zero, count, positive, run_dir, stderr, stdout
from harness.config import Target
from harness.errors import ConfigError
from harness.render.text import visible

if TYPE_CHECKING:  # imported where used: `harness run` need not load model analysis
    from harness.models.analysis import ModelAnalysis
    from harness.models.arena import ArenaFit, FitRow
    from harness.plan import ProfilePlan
    from harness.results.layers import LayerProfile
    from harness.results.prediction import Prediction


@dataclass(frozen=True)
class Report:
    """What one `harness analyze` computed, for the table or the JSON object."""

    analysis: ModelAnalysis
    fit: ArenaFit | None = None
    rows: list[FitRow] = field(default_factory=list)
    profiles: list[LayerProfile] = field(default_factory=list)
    prediction: Prediction | None = None


def cmd_analyze(args: argparse.Namespace) -> int:
    """Per-op table of one model; --fits: its TFLite Micro arena against the MCU targets;
    --profile TARGET / --profile-from RUN: per-layer time on a board; --predict-from RUN: its
    latency predicted from what the boards of a stored run measured. Exit 130 when Ctrl-C cut a
    --profile short, 143 or 129 for SIGTERM or SIGHUP (what was measured is shown, and stored)."""
    from harness.models.analysis import analyze

    analysis = analyze(args.model)
    fit: ArenaFit | None = None
    rows: list[FitRow] = []
    profiles: list[LayerProfile] = []
    prediction: Prediction | None = None
    stopped_by: signal.Signals | None = None
    if args.fits or args.profile:
        targets, source = config.load_targets(args.targets)
    if args.fits:
        fit, rows = _fits(args, targets, source)
    if args.profile:
        profiles, stopped_by = _profile(args, analysis, targets, source)
    if args.profile_from:
        from harness.results.layers import profiles_from_run

        profiles = profiles_from_run(run_dir(args.results, args.profile_from), args.model)
    if args.predict_from:
        from harness.results.prediction import predict

        prediction = predict(analysis, _predict_runs(args.results, args.predict_from))
    report = Report(analysis, fit, rows, profiles, prediction)
    if args.json:
        print(json.dumps(_json(report)), flush=True)
    else:
        _print(report, args.top)
    return 128 + stopped_by if stopped_by else 0


def _predict_runs(results: Path, refs: list[str]) -> list[Path]:
    """The runs --predict-from names: run ids or paths (benchmark or profile runs), ``latest`` (the
    latest benchmark run) and ``latest-profile`` (the latest profile run), each once."""
    from harness.results import store

    runs: list[Path] = []
    for ref in refs:
        run = store.resolve_run(results, None, "profile") if ref == "latest-profile" else run_dir(results, ref)
        if run.resolve() not in (r.resolve() for r in runs):
            runs.append(run)
    return runs


def _fits(args: argparse.Namespace, targets: dict[str, Target], source: Path) -> tuple[ArenaFit, list[FitRow]]:
    from harness.models.arena import fits_on, measure_arena

    chosen = (config.select(targets, args.target, source) if args.target
              else [t for t in targets.values() if t.kind == "serial"])
    if not chosen:
        raise ConfigError(f"{source}: no microcontroller (kind = \"serial\") target to check the fit on",
                          hint="pass --target NAME, or add a serial target with ram and flash")
    fit = measure_arena(args.model)
    return fit, fits_on(fit, chosen)


def _profile(args: argparse.Namespace, analysis: ModelAnalysis, targets: dict[str, Target],
             source: Path) -> tuple[list[LayerProfile], signal.Signals | None]:
    """--profile TARGET: a profile run in --results; its profile (or what Ctrl-C left of it), and
    the signal that interrupted it, if one did. Raises the board's error after saying where the run is."""
    from harness.scenarios.profile import run_profile

    (board,) = config.select(targets, [args.profile], source)
    plan = _profile_plan(args)
    err = stderr()
    until = (f"{plan.rounds} rounds" if plan.rounds is not None else
             f"until the sum check's SE is under {100 * plan.target_se:g} %, at most {plan.max_time_s:g} s")
    err.print(visible(f"timing {len(analysis.ops) + 1} prefixes of {args.model.name} on {board.name} ({until}) ..."),
              markup=False)
    with tempfile.TemporaryDirectory(prefix="harness-prefixes-") as work:
        run = run_profile(board, args.model, Path(work), args.results, plan, analysis=analysis,
                          observer=SessionProgress())
    interrupted = run.status == "interrupted"
    if interrupted:
        err.print(Text.assemble(("interrupted", "yellow"), f": everything measured so far is in {run.path} "
                                f"(harness show {run.run_id})"))
    else:
        err.print(f"results: {run.path}", markup=False)
    outcome = run.outcome
    stopped_by = (run.signal or signal.SIGINT) if interrupted else None
    if outcome is None:
        return [], stopped_by
    if outcome.error is not None and not interrupted:
        raise outcome.error
    return ([outcome.profile] if outcome.profile is not None else []), stopped_by


def _profile_plan(args: argparse.Namespace) -> ProfilePlan:
    """The profile plan of the options: --rounds N fixes the rounds; otherwise adaptive, bounded by
    --max-time and aiming at --target-se (which a fixed --rounds cannot be given with)."""
    from harness.plan import ProfilePlan

    adaptive = {k: v for k, v in (("max_time_s", args.max_time),
                                  ("target_se", None if args.target_se is None else args.target_se / 100))
                if v is not None}
    if args.rounds is not None and adaptive:
        given = " and ".join(f"--{k.removesuffix('_s').replace('_', '-')}" for k in adaptive)
        args.analyze_parser.error(f"--rounds fixes the rounds; {given} bound(s) adaptive rounds: give one or the other")
    return ProfilePlan(threads=args.threads, xnnpack=args.xnnpack == "on", rounds=args.rounds, clock=args.clock,
                       **adaptive)


class SessionProgress:
    """Shows each agent session of an adaptive profile on stderr: why the host asked for more."""

    def job_started(self, job: object) -> None:
        pass

    def job_message(self, job: object, msg: dict[str, Any]) -> None:
        if msg.get("type") == "session" and msg.get("index") and msg.get("sum_check_se") is not None:
            stderr().print(f"sum check SE {100 * msg['sum_check_se']:.1f} %: {msg['rounds']} more rounds "
                           f"({msg['max_time_s']:.0f} s left)", markup=False)

    def job_finished(self, outcome: object) -> None:
        pass


def _json(r: Report) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": "analysis", **r.analysis.to_json()}
    if r.prediction is not None:
        data["prediction"] = r.prediction.to_json()
    if r.fit is not None:
        data["arena"] = r.fit.to_json()
        data["fits_on"] = [row.to_json() for row in r.rows]
    if r.profiles:
        data["profile"] = r.profiles[0].to_json()  # --profile: the one board; kept for scripts
        data["profiles"] = [p.to_json() for p in r.profiles]
    return data


def _print(r: Report, top: int) -> None:
    from harness.render.analysis import analysis_renderable, fits_table, profile_lines, profile_table

    out = stdout()
    out.print(analysis_renderable(r.analysis))
    if r.fit is not None:
        out.print(fits_table(r.fit, r.rows))
        for note in r.fit.notes:
            out.print(f"note: {note}")
    for prof in r.profiles:
        out.print(profile_table(prof, top))
        for line in profile_lines(prof):
            out.print(line)
    if r.prediction is not None:
        from harness.render.prediction import prediction_renderables

        # Fitted to the terminal, else to the 100 columns a pipe or file gets (as the results table).
        width = out.width if out.is_terminal else TABLE_WIDTH
        for renderable in prediction_renderables(r.analysis, r.prediction, top, width):
            out.print(renderable)
        for why in r.prediction.skipped:
            stderr().print(f"left out: {why}")


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--threads", type=positive, default=1, help="interpreter threads for --profile (default 1)")
    p.add_argument("--xnnpack", choices=("on", "off"), default="off",
                   help="XNNPACK for --profile (default off: fused ops cannot be split into layers)")
    p.add_argument("--rounds", type=positive, default=None,
                   help="exactly this many interleaved timing rounds for --profile, in one agent session "
                        "(default: adaptive, see --target-se and --max-time)")
    p.add_argument("--target-se", type=above_zero, default=None, metavar="PCT",
                   help="adaptive --profile: add rounds until the sum check's standard error is under PCT %% "
                        "(default 2)")
    p.add_argument("--max-time", type=above_zero, default=None, metavar="S",
                   help="adaptive --profile: the time bound on the board's part, in seconds (default 60); the "
                        "output says whether the SE target or this bound stopped it")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or the Invoking thread's CPU time (1 thread only) for --profile")
    p.add_argument("--top", type=count, default=10,
                   help="heaviest layers shown by --profile, and op kinds by --predict-from (default 10)")
    p.add_argument("--predict-from", metavar="RUN", nargs="+",
                   help="predict the model's Invoke on every board of stored runs (run ids or paths of "
                        "benchmark and profile runs; latest: the latest benchmark run, latest-profile: the "
                        "latest profile run) from per-op-type rates fitted on them, validated leave-one-out")
    p.add_argument("--profile-from", metavar="RUN",
                   help="per-layer times stored in a run: a profile run's (run id), or those the MCU firmware's "
                        "profiler measured in a benchmark run (run id, or latest: the latest benchmark run)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results directory: where --profile stores its run, and --predict-from/--profile-from read")
    p.set_defaults(func=cmd_analyze, analyze_parser=p)

