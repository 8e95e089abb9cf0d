"""`harness quantize MODEL`: float16, dynamic-range, weight-only, int8 and mixed variants of a
float32 model, each checked with `harness analyze` and recorded in a recipe file beside it.

Exit status: 0 when every kind asked for was made or skipped for a reason named on stderr (at
least one made); 1 when none could be made, or when a variant failed its check (the quantizer
did not put int8 exactly where asked), the others being made and kept; 2 for a usage error,
including a --mixed-layers index that is not a layer of the model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from harness.cli.common import TABLE_WIDTH, existing_file, positive, stderr, stdout
from harness.errors import ConfigError
from harness.render.text import visible

if TYPE_CHECKING:  # imported where used: `harness run` need not load the quantizer's helpers
    from harness.models.analysis import ModelAnalysis
    from harness.models.recipes import Calibration
    from harness.models.variants import Variant

CANNOT_MAKE = ("quantizer_failed", "nothing_quantized", "no_signature", "needs_calibration")


def cmd_quantize(args: argparse.Namespace) -> int:
    from harness.models.analysis import analyze
    from harness.models.variants import NEEDS_CALIBRATION, quantize

    usage: Callable[[str], Any] = args.usage
    kinds = _kinds(args, usage)
    base = analyze(args.model)
    if base.scheme != "float32":
        raise ConfigError(f"{args.model} is already quantized (scheme {base.scheme})",
                          hint="quantize its float32 base model instead")
    mixed = _mixed_options(args, base) if "mixed" in kinds else {}
    calib, skipped = _calibration(args, [k for k in kinds if k in NEEDS_CALIBRATION])
    made: list[Variant] = []
    failed = 0
    for kind in kinds:
        if kind in skipped:
            continue
        try:
            made.append(quantize(args.model, kind, args.out, calibration=calib,
                                 **(mixed if kind == "mixed" else {})))
        except ConfigError as exc:
            if exc.code == "usage":
                usage(exc.message)
            if exc.code not in CANNOT_MAKE:
                if exc.code != "layers_differ":
                    raise
                failed += 1
                stderr().print(Text.assemble(("error", "red"), f": {visible(str(exc))}"))
            else:
                _skip([kind], exc)
    _print(args, base, made)
    if not made:
        stderr().print(Text.assemble(("error", "red"), visible(f": no variant of {args.model} was made")))
    return 1 if failed or not made else 0


def _kinds(args: argparse.Namespace, usage: Callable[[str], Any]) -> list[str]:
    """The kinds to make, in KINDS order; mixed only when a choice of layers was given."""
    from harness.models.variants import KINDS

    choice = args.mixed_top is not None or args.mixed_layers is not None
    if args.by_time and args.mixed_top is None:
        usage("--by-time ranks the layers of --mixed-top K: give --mixed-top too")
    if args.mixed_invert and not choice:
        usage("--mixed-invert inverts a choice of layers: give --mixed-top K or --mixed-layers LIST")
    if args.kinds is None:
        return [k for k in KINDS if k != "mixed" or choice]
    if "mixed" in args.kinds and not choice:
        usage("kind mixed needs its layers: give --mixed-top K or --mixed-layers LIST")
    if choice and "mixed" not in args.kinds:
        usage("--mixed-top and --mixed-layers choose the layers of kind mixed, which --kinds leaves out")
    return [k for k in KINDS if k in args.kinds]


def _mixed_options(args: argparse.Namespace, base: ModelAnalysis) -> dict[str, Any]:
    """quantize()'s options for kind mixed, the layers checked now (a bad index is a usage error
    before anything is made); with --by-time, the layer times of a stored profile of this model."""
    from harness.models.variants import choose_layers

    times: dict[int, float] | None = None
    run_id: str | None = None
    if args.by_time:
        times, run_id = _layer_times(args.results, args.by_time, args.model)
    options: dict[str, Any] = {"layers": args.mixed_layers, "top": args.mixed_top, "invert": args.mixed_invert,
                               "by": "time" if times is not None else "flops", "layer_times": times,
                               "profile_run": run_id}
    try:
        choose_layers(base, layers=args.mixed_layers, top=args.mixed_top, by=options["by"], layer_times=times)
    except ConfigError as exc:
        args.usage(str(exc))
    return options


def _layer_times(results: Path, ref: str, model: Path) -> tuple[dict[int, float], str]:
    """Each op's measured time (ns, by op index) in a stored profile run of this very model
    (matched by sha256), and the run's id."""
    from harness.models.files import sha256
    from harness.results import store
    from harness.results.layers import stored_profiles

    run = store.resolve_run(results, None if ref == "latest" else ref, kind="profile")
    if store.run_kind(store.load_meta(run)) != "profile":
        raise ConfigError(f"--by-time {ref}: run {run.name} is a benchmark run, not a per-layer profile",
                          hint="profile the model first: harness analyze MODEL --profile TARGET")
    sha = sha256(model)
    found = [r for r in stored_profiles(run) if r.profile is not None and r.model_sha256 == sha]
    if not found:
        raise ConfigError(f"--by-time {ref}: profile run {run.name} has no profile of {model} "
                          f"(sha256 {sha[:12]}…)", hint=f"profile this model: harness analyze {model} --profile TARGET")
    best = next((r for r in found if r.complete), found[0])
    assert best.profile is not None
    return {layer.index: layer.ns for layer in best.profile.layers}, best.profile.run_id or run.name


def _calibration(args: argparse.Namespace, needing: list[str]) -> tuple[Calibration | None, set[str]]:
    """The calibration data (read once for every kind), and the kinds skipped for the want of it,
    with one line for all of them."""
    from harness.models.variants import read_calibration

    if not needing:
        return None, set()
    if args.calibration is None:
        they = "they need" if len(needing) > 1 else "it needs"
        _skip(needing, ConfigError(f"{args.model}: {they} calibration data",
                                   hint="pass --calibration FILE.npz (arrays keyed by input name, or x)"))
        return None, set(needing)
    try:
        return read_calibration(args.calibration, args.model), set()
    except ConfigError as exc:
        if exc.code != "no_signature":
            raise  # a calibration file that cannot be read is the user's to fix, before anything is made
        _skip(needing, exc)
        return None, set(needing)


def _skip(kinds: list[str], why: ConfigError) -> None:
    """One line for the kinds that cannot be made, naming the model, the reason and the fix."""
    stderr().print(Text.assemble(("skipped", "yellow"), visible(f" {' and '.join(kinds)}: {why}")))


def _print(args: argparse.Namespace, base: ModelAnalysis, made: list[Variant]) -> None:
    if args.json:
        for v in made:
            print(json.dumps(v.to_json(), separators=(", ", ": ")), flush=True)
        return
    if not made:
        return
    from harness.render.analysis import human_bytes
    from harness.render.terminal import render
    from harness.render.variants import variants_grid

    out = stdout()
    title = f"{args.model.name} ({human_bytes(base.size_bytes)}, float32) → {args.out}"
    grid = variants_grid(made, visible(title))
    for table in render(grid, out.width if out.is_terminal else TABLE_WIDTH):
        out.print(table)
    for line in grid.legend:
        out.print(line, markup=False, highlight=False)


def _kind_list(text: str) -> list[str]:
    from harness.models.variants import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: kinds are {', '.join(KINDS)} (comma-separated)")
    return kinds


def _index_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of op indices") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: op indices are integers from 0, as harness analyze prints them")
    return sorted(set(values))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="make float16, int8, dynamic, weight-only and mixed variants of a model",
                       description="Make variants of a float32 .tflite with ai-edge-quantizer, each checked "
                                   "with harness analyze and written as <stem>.<name>.tflite with "
                                   "<stem>.<name>.recipe.json beside it (how harness run finds its base).")
    p.add_argument("model", type=Path, help="a float32 .tflite model")
    p.add_argument("--kinds", type=_kind_list, metavar="LIST",
                   help="float16,dynamic_int8,weight_only_int8,int8,mixed (default: all; mixed when its "
                        "layers are chosen)")
    p.add_argument("--calibration", type=existing_file, metavar="FILE.npz",
                   help="calibration samples for int8 and mixed, read as --inputs of harness run: arrays "
                        "keyed by input name, or x; N samples stacked")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--mixed-top", type=positive, metavar="K",
                        help="mixed: int8 in the K heaviest layers (by FLOPs, or --by-time), float32 elsewhere")
    choice.add_argument("--mixed-layers", type=_index_list, metavar="LIST",
                        help="mixed: int8 in these layers (op indices as harness analyze prints them: 3,7,12)")
    p.add_argument("--mixed-invert", action="store_true",
                   help="mixed: the reverse, int8 everywhere except the chosen layers")
    p.add_argument("--by-time", metavar="RUN",
                   help="rank --mixed-top by measured time: a profile run of this model (run id, path, or "
                        "latest), from harness analyze MODEL --profile TARGET")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                   help="folder for the variants (default: the current directory; created if missing)")
    p.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                   help="results directory --by-time reads (default: results)")
    p.add_argument("--json", action="store_true", help="one JSON object per variant on stdout")
    p.set_defaults(func=cmd_quantize, usage=p.error)
