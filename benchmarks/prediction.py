"""How well does a board's measured speed predict a model it has not run? On `local`, for the
shipped models and their variants (`harness quantize`: float16, dynamic_int8, weight_only_int8,
int8, mixed-top3), measure every model with `harness run --processes 3` and profile every model
with `harness analyze --profile local`, with XNNPACK off and on (each its own group); then predict
each model leave-one-out (its own runs and profiles left out of the fit) by

- the single rate: the model's FLOPs over the board's achieved GFLOP/s for its precision, and
- the per-op-type fit: per-op FLOPs over a rate per (op class, precision), plus one per-op overhead,

on the same data, and report the median absolute error of each, per board and XNNPACK setting
(the per-op fit also with every variant of the left-out model left out: no sibling file of the
same ops in its fit).
Every command is the one a user types, in a fresh process; the figures are measured ones.

    python benchmarks/prediction.py [--work DIR] [--xnnpack off,on] [--reuse]

--reuse analyses the runs already stored in DIR/results (from an earlier call with --work DIR)
without measuring again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.models.files import example_models  # noqa: E402
from harness.results import fit as opfit  # noqa: E402
from harness.results.fit import Model  # noqa: E402
from harness.results.prediction import measured_of, validate_predictions  # noqa: E402
from harness.results.readings import read_runs  # noqa: E402

TARGETS = '[targets.local]\nkind = "local"\ndescription = "this machine"\nthreads = [1]\n'


def harness(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *argv], env=env, check=check, capture_output=True,
                          text=True)


def calibration_of(model: Path) -> Path:
    stem = "digits" if model.stem == "digits_cnn" else model.stem
    return model.with_name(f"{stem}_test.npz")


def make_variants(work: Path) -> list[Path]:
    """The shipped models and every variant `harness quantize` makes of each (mixed: top 3 layers)."""
    models = []
    for base in example_models():
        harness("quantize", str(base), "--calibration", str(calibration_of(base)), "--mixed-top", "3",
                "--out", str(work / "models"))
        models.append(base)
        models.extend(sorted((work / "models").glob(f"{base.stem}.*.tflite")))
    return models


def _error_line(done: subprocess.CompletedProcess[str]) -> str:
    return next((line for line in done.stderr.splitlines() if line.startswith("error:")), done.stderr[-200:])


def run_all(models: list[Path], work: Path, xnnpack: str) -> None:
    """One `harness run` of every model, 3 processes each. Its exit status 1 (a variant flagged, a
    failed benchmark) still leaves every measurement on disk: said, and the fit goes on."""
    argv = ["run", "--targets", str(work / "targets.toml"), "--target", "local", "--processes", "3",
            "--xnnpack", xnnpack, "--results", str(work / "results")]
    for m in models:
        argv += ["--model", str(m)]
    t0 = time.monotonic()
    done = harness(*argv, check=False)
    print(f"  harness run, {len(models)} models, XNNPACK {xnnpack}: {time.monotonic() - t0:.0f} s"
          + (f" (exit {done.returncode}: {_error_line(done)})" if done.returncode else ""), file=sys.stderr)


def profile_all(models: list[Path], work: Path, xnnpack: str) -> list[str]:
    """One `harness analyze --profile local` of each model; the profiles that failed, each with
    the board's one-line error (the fit goes on without them)."""
    t0 = time.monotonic()
    failed = []
    for m in models:
        done = harness("analyze", str(m), "--profile", "local", "--xnnpack", xnnpack, "--targets",
                       str(work / "targets.toml"), "--results", str(work / "results"), "--json", check=False)
        if done.returncode:
            failed.append(f"{m.name}, XNNPACK {xnnpack}: {_error_line(done)}")
    print(f"  harness analyze --profile, {len(models)} models, XNNPACK {xnnpack}: {time.monotonic() - t0:.0f} s",
          file=sys.stderr)
    for why in failed:
        print(f"  profile failed: {why}", file=sys.stderr)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, help="keep models and runs here (default: a temporary directory)")
    ap.add_argument("--xnnpack", default="off,on", help="XNNPACK settings to measure (default off,on)")
    ap.add_argument("--reuse", action="store_true", help="analyse the runs stored in --work; measure nothing")
    ap.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prediction-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.reuse:
            (work / "targets.toml").write_text(TARGETS)
            models = make_variants(work)
            print(f"{len(models)} models ({len(example_models())} shipped + variants)", file=sys.stderr)
            for xnnpack in args.xnnpack.split(","):
                run_all(models, work, xnnpack)
                profile_all(models, work, xnnpack)
        report(work / "results", args.json)


def family(model: Model) -> str:
    """The base model a file belongs to: "ds_cnn_kws.int8.tflite" -> "ds_cnn_kws"."""
    return model.name.split(".")[0]


def _median_abs(errors: list[float]) -> float | None:
    return statistics.median(abs(e) for e in errors) if errors else None


def figures(results: Path) -> dict[str, Any]:
    """Per group (board, threads, XNNPACK): the median absolute leave-one-out error of the per-op
    fit (each file left out; and each base model left out with all its variants), of the single
    rate, and what was extrapolated."""
    runs = sorted(p.parent for p in results.glob("*/run.json"))
    readings = read_runs(runs)
    by_file, by_family = opfit.leave_one_out(readings.wholes, readings.layers), \
        opfit.leave_one_out(readings.wholes, readings.layers, same=family)
    single = validate_predictions(measured_of(readings))
    groups = []
    for g in sorted({w.group for w in readings.wholes}, key=lambda g: (g.target, g.threads, g.xnnpack)):
        mine = [c for c in by_file if c.group == g]
        fam = [c for c in by_family if c.group == g]
        old = [c for c in single if (c.target, c.threads, c.precision.endswith("+xnnpack"))
               == (g.target, g.threads, g.xnnpack)]
        groups.append({
            "group": g.label(), "models": len([w for w in readings.wholes if w.group == g]),
            "profiles": len([p for p in readings.layers if p.group == g]),
            "per_op": _median_abs([c.error for c in mine]), "per_op_n": len(mine),
            "per_op_family": _median_abs([c.error for c in fam]),
            "single_rate": _median_abs([c.error for c in old]), "single_rate_n": len(old),
            "extrapolated": sorted({c.model.name for c in mine if c.estimate.extrapolated}),
            "extrapolated_family": sorted({c.model.name for c in fam if c.estimate.extrapolated}),
            "errors": {c.model.name: round(c.error, 4) for c in mine},
            "errors_family": {c.model.name: round(c.error, 4) for c in fam},
            "errors_single_rate": {c.model: round(c.error, 4) for c in old},
        })
    return {"runs": [r.name for r in runs], "skipped": list(readings.skipped), "groups": groups}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def report(results: Path, as_json: bool) -> None:
    data = figures(results)
    if as_json:
        print(json.dumps(data))
        return
    print("median |leave-one-out error| per board (models predicted / measured)")
    print(f"{'board':<34} {'per-op fit':>16} {'+ variants out':>15} {'single rate':>16}")
    for g in data["groups"]:
        print(f"{g['group']:<34} {_pct(g['per_op']):>9} ({g['per_op_n']:>2}/{g['models']:>2}) "
              f"{_pct(g['per_op_family']):>15} {_pct(g['single_rate']):>9} ({g['single_rate_n']:>2}/{g['models']:>2})")
    for g in data["groups"]:
        print(f"\n{g['group']}: each model's error (per-op fit, with its variants left out too, single rate)")
        for name, err in sorted(g["errors"].items()):
            fam, old = g["errors_family"].get(name), g["errors_single_rate"].get(name)
            mark = (" extrapolated" if name in g["extrapolated"] else "") + (" extrapolated with variants out" if name in g["extrapolated_family"] else "")
            print(f"  {name:<44} {100 * err:+7.1f} % {_signed(fam):>9} {_signed(old):>9}{mark}")
    for why in data["skipped"]:
        print(f"left out: {why}", file=sys.stderr)


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} %"


if __name__ == "__main__":
    main()
