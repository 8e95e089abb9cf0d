"""`harness analyze`: inside the model: FLOPs, per-layer time, prediction, fit."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import config
from harness.cli.common import run_dir, stderr, stdout
from harness.errors import ConfigError


def cmd_analyze(args: argparse.Namespace) -> int:
    """Per-op table of one model; --fits: its TFLite Micro arena against the MCU targets;
    --profile TARGET / --profile-from RUN: per-layer time on a board; --predict-from RUN: its
    latency predicted from what the boards of a stored run measured."""
    import json
    import tempfile

    from harness.models.analysis import analyze
    from harness.render.analysis import (
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
        from harness.models.arena import fits_on, measure_arena

        chosen = (config.select(targets, args.target, source) if args.target
                  else [t for t in targets.values() if t.kind == "serial"])
        if not chosen:
            raise ConfigError(f"{source}: no microcontroller (kind = \"serial\") target to check the fit on",
                              hint="pass --target NAME, or add a serial target with ram and flash")
        fit = measure_arena(args.model)
        rows = fits_on(fit, chosen)
    if args.profile:
        from harness.scenarios.profile import profile_target

        (board,) = config.select(targets, [args.profile], source)
        stderr().print(f"timing {len(analysis.ops) + 1} prefixes of {args.model.name} on {board.name} ...")
        with tempfile.TemporaryDirectory(prefix="harness-prefixes-") as work:
            profiles = [profile_target(board, args.model, work, threads=args.threads,
                                       xnnpack=args.xnnpack == "on", rounds=args.rounds, clock=args.clock)]
    if args.profile_from:
        from harness.results.layers import firmware_profiles

        profiles = firmware_profiles(run_dir(args.results, args.profile_from), args.model)
    if args.predict_from:
        from harness.results.prediction import predict

        prediction = predict(analysis, run_dir(args.results, args.predict_from))
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
    out = stdout()
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
            stderr().print(f"left out: {why}")
    return 0


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

