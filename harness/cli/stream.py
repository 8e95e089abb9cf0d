"""`harness stream` and `harness soak`: does the board keep up with the sensor?

Both run the application loop on each board fed by a schedule that runs on the board (a fixed
rate, Poisson arrivals, a camera, an audio window sliding by a hop), store every frame's times
in a run of kind "stream" and print the streams table; `harness soak` is the same run, by default
ten minutes long, that reports latency over time beside the board's temperature and clocks.
With --find-max each stream becomes a search for the largest rate the board sustains.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from pathlib import Path

from rich.console import Console
from rich.text import Text

from harness import __version__, config
from harness.cli.common import (
    PIPE_WIDTH,
    TABLE_WIDTH,
    add_wide,
    count,
    existing_file,
    python_file,
    seconds,
    stderr,
    stdout,
    threads_list,
)
from harness.errors import ConfigError, HarnessError, Interrupted
from harness.models.files import example_models
from harness.render.text import visible
from harness.results import store, stream_store
from harness.results.stream import StreamRecord
from harness.stream_plan import FindMaxPlan, StreamPlan

CAMERA_RATES = (5, 15, 30)
DEFAULT_RATE_HZ = 30.0  # with no schedule given: a 30 frames/s camera, the commonest sensor
SOAK_MINUTES = 10.0


def schedule_options(args: argparse.Namespace) -> dict[str, object]:
    """The StreamPlan fields of --rate, --poisson, --camera, --audio-window/--hop, --deadline and
    --drop-late (usage errors exit 2)."""
    usage = args.stream_parser.error
    if (args.audio_window is None) != (args.hop is None):
        usage("--audio-window and --hop go together: a frame every hop, each covering one window")
    fields: dict[str, object] = {"policy": "drop-late" if args.drop_late else "queue"}
    if args.poisson is not None:
        fields.update(arrivals="poisson", rate_hz=args.poisson, source="poisson")
    elif args.camera is not None:
        fields.update(rate_hz=float(args.camera), source="camera")
    elif args.audio_window is not None:
        if args.hop > args.audio_window:
            usage(f"--hop {args.hop:g} is longer than --audio-window {args.audio_window:g}: windows would leave gaps")
        fields.update(rate_hz=1.0 / args.hop, source="audio", window_s=args.audio_window)
    else:
        fields.update(rate_hz=args.rate or DEFAULT_RATE_HZ, source="rate")
    if args.deadline is not None:
        fields["deadline_ns"] = round(args.deadline * 1e6)
    if args.max_late is not None and not args.find_max:
        usage("--max-late is the criterion of --find-max; give it with --find-max")
    if args.find_max:
        fields["find_max"] = FindMaxPlan(max_late_pct=args.max_late if args.max_late is not None else 1.0,
                                         cooldown_s=args.cooldown or 0.0)
    elif args.cooldown:
        usage("--cooldown waits between --find-max trials; give it with --find-max")
    return fields


def cmd_stream(args: argparse.Namespace) -> int:
    from harness.render.stream import StreamProgress
    from harness.scenarios.runner import Runner
    from harness.scenarios.stream import StreamScenario, plan_streams

    fields = schedule_options(args)
    targets, source = config.load_targets(args.targets)
    selected = config.select(targets, args.target or [], source)
    models = [Path(m) for m in args.model] if args.model else example_models()
    if not models:
        raise ConfigError("no models to stream", hint="pass --model PATH")
    minutes = args.minutes if args.minutes is not None else (SOAK_MINUTES if args.command == "soak" else 0.5)
    plan = StreamPlan(duration_s=minutes * 60, warmup=args.warmup, warmup_time_s=args.warmup_time, seed=args.seed,
                      xnnpack=args.xnnpack == "on", inputs=args.inputs.resolve() if args.inputs else None,
                      pipeline=args.pipeline.resolve() if args.pipeline else None,
                      device_work_us=args.device_work_us, spin_us=args.spin_us,
                      state_interval_s=args.state_interval, command=args.command, **fields)  # type: ignore[arg-type]
    jobs, refused = plan_streams(selected, models, args.threads, plan)
    run_store = store.RunStore(args.results, kind="stream")
    run_store.start({"targets_file": str(source), "plan": plan.as_dict(),
                     "targets": {t.name: t.facts() for t in selected},
                     "models": {str(j.model): j.model_sha256 for j in jobs},
                     "matrix": [{"target": j.target, "model": j.model.name, "threads": j.threads}
                                for j in [*jobs, *(j for j, _ in refused)]]})
    err = stderr()
    err.print(visible(f"harness {__version__}: {len(jobs) + len(refused)} streams on "
                      f"{', '.join(t.name for t in selected)} → {run_store.path}"), markup=False)
    try:
        outcomes = Runner(run_store, selected, StreamScenario(), StreamProgress(err)).run(jobs, refused)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (harness.cli.stop_signals)
        sig = Interrupted.of(exc)
        run_store.finish("interrupted", signal=sig.name)
        with contextlib.suppress(OSError):
            print_streams(args, run_store.run_id, stream_store.load_streams(run_store.path)[1])
            err.print(Text.assemble(("interrupted", "yellow"), f": everything measured so far is in "
                                    f"{run_store.path} (harness show {run_store.run_id})"))
        return 128 + sig
    except HarnessError as exc:
        run_store.fail(str(exc))
        raise
    except Exception as exc:
        run_store.fail(f"bug: {type(exc).__name__}: {exc}")
        raise
    failed = [o for o in outcomes if o.error is not None]
    run_store.finish("complete" if not failed else "complete_with_errors")
    if args.json:
        for o in outcomes:
            print(json.dumps(o.summary, separators=(", ", ": ")), flush=True)
    else:
        print_streams(args, run_store.run_id, [o.record for o in outcomes])
    err.print(f"results: {run_store.path}", markup=False)
    if failed:
        err.print(Text(f"{len(failed)} of {len(outcomes)} streams failed", style="red"))
        return 1
    return 0


def print_streams(args: argparse.Namespace, run_id: str | None, records: list[StreamRecord]) -> None:
    """The streams table and the lines under it on stdout (a stored run: `harness show` too); with
    --json, each stream's object recomputed from its stored frames."""
    from harness.render.stream import stream_view
    from harness.scenarios.stream import summarize

    if args.json:
        for r in records:
            print(json.dumps(summarize(r, run_id), separators=(", ", ": ")), flush=True)
        return
    title = f"harness stream {run_id}" if run_id else None
    wide = bool(getattr(args, "wide", False))
    out = stdout()
    if out.is_terminal:
        view = stream_view(records, title, wide, out.width)
    else:
        view = stream_view(records, title, wide, None if wide else TABLE_WIDTH)
        out = Console(width=PIPE_WIDTH, no_color=True)
    for item in view:
        out.print(item, soft_wrap=isinstance(item, Text) and not out.is_terminal, highlight=False)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number above 0")
    return value


def _percent(text: str) -> float:
    value = _rate(text)
    if value >= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: give a percentage under 100")
    return value


def _schedule_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rate", type=_rate, metavar="HZ",
                       help=f"frames per second at a fixed period (default {DEFAULT_RATE_HZ:g})")
    which.add_argument("--poisson", type=_rate, metavar="HZ", help="random (Poisson) arrivals at this mean rate")
    which.add_argument("--camera", type=int, choices=CAMERA_RATES, help="a camera at 5, 15 or 30 frames/s")
    which.add_argument("--audio-window", type=_rate, metavar="S",
                       help="with --hop: a frame every hop, each covering a window of S seconds")
    p.add_argument("--hop", type=_rate, metavar="S", help="with --audio-window: seconds between frames (the deadline)")
    p.add_argument("--deadline", type=_rate, metavar="MS", help="milliseconds after each frame's time (default: one period)")
    p.add_argument("--drop-late", action="store_true",
                   help="skip frames whose deadline has passed when the board is free, as a camera driver "
                        "does (default: every frame waits its turn in a queue)")
    p.add_argument("--find-max", action="store_true",
                   help="search for the largest rate at which late and dropped frames stay under --max-late")
    p.add_argument("--max-late", type=_percent, metavar="PCT",
                   help="with --find-max: the criterion, in %% of frames (default 1, a p99 claim)")
    p.add_argument("--cooldown", type=seconds, metavar="S",
                   help="with --find-max: before each trial, wait until the board is back near its starting "
                        "temperature, at most S seconds")


def add_parser(sub: argparse._SubParsersAction) -> None:
    for command, helptext, minutes in (
            ("stream", "run the application loop on each board fed by a sensor's schedule", 0.5),
            ("soak", "a long stream: latency over time beside the board's temperature and clocks", SOAK_MINUTES)):
        p = sub.add_parser(command, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        p.add_argument("--targets", type=Path, help="targets file (default: ./targets.toml)")
        p.add_argument("--target", action="append", metavar="NAME", help="a target to use (repeatable; default all)")
        p.add_argument("--model", action="append", metavar="PATH",
                       help="a .tflite model (repeatable; default: the example models)")
        p.add_argument("--threads", type=threads_list, metavar="N,M", help="thread counts (default: each target's)")
        _schedule_arguments(p)
        p.add_argument("--minutes", type=_rate, metavar="M",
                       help=f"the stream's length (default {minutes:g}; with --find-max, the longest a trial runs)")
        d = StreamPlan()
        p.add_argument("--warmup", type=count, default=d.warmup, metavar="N", help="warm-up iterations, before the frames")
        p.add_argument("--warmup-time", type=seconds, default=d.warmup_time_s, metavar="S",
                       help=f"minimum warm-up seconds (default {d.warmup_time_s})")
        p.add_argument("--seed", type=count, default=d.seed, help="seed of the random inputs and of Poisson arrivals")
        p.add_argument("--xnnpack", choices=("on", "off"), default="on", help="the default XNNPACK delegate")
        p.add_argument("--inputs", type=existing_file, metavar="FILE", help="inputs as .npy or .npz")
        p.add_argument("--pipeline", type=python_file, metavar="APP.PY",
                       help="a file defining load(i), preprocess(raw), postprocess(outputs)")
        p.add_argument("--device-work-us", type=count, default=0, metavar="US",
                       help="spin this long on the board before each Invoke: a known load (the application's "
                            "work on a microcontroller)")
        p.add_argument("--spin-us", type=count, default=d.spin_us, metavar="US",
                       help=f"the board spins, not sleeps, this long before each frame (default {d.spin_us})")
        p.add_argument("--state-interval", type=_rate, default=d.state_interval_s, metavar="S",
                       help=f"seconds between reads of the board's temperatures and clocks (default {d.state_interval_s:g})")
        p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
        p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per stream")
        add_wide(p)
        p.set_defaults(func=cmd_stream, stream_parser=p)
