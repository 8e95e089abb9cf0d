"""What an adaptive per-layer profile achieves on the shipped models (harness/example_models) and on
a 52-op residual stack (tests/modelkit.py deep_cnn), on the local target with the real agent and
runtime: for XNNPACK off and on, the rows, the sum check and its standard error, why it stopped
(the SE under --target-se, or the time bound), how many rounds and agent sessions that took, the
board's wall time, the rows below resolution; and, on the same stored samples, the sum check of
the estimator before this one (the median of raw per-turn differences, tests/profilesim.py
naive_layers), which shows what the speed normalisation and the per-order medians are worth.

It prints figures; it asserts nothing (the tests do). The figures depend on the machine's load:
on a shared 2-core machine, run it when the other work is quiet, and run it twice.

    python benchmarks/layer_profile.py [--max-time 60] [--target-se 2] [--board-python PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.config import parse_targets  # noqa: E402
from harness.plan import ProfilePlan  # noqa: E402
from harness.results.layers import LayerProfile  # noqa: E402
from harness.scenarios.profile import run_profile  # noqa: E402
from tests.modelkit import deep_cnn  # noqa: E402
from tests.profilesim import naive_layers  # noqa: E402

SHIPPED = ("digits_cnn", "ds_cnn_kws", "mobilenet_v1_025_96")


def models(work: Path) -> list[Path]:
    return [*(ROOT / "harness" / "example_models" / f"{m}.tflite" for m in SHIPPED),
            deep_cnn(work / "deep_cnn.tflite"), deep_cnn(work / "deep_cnn_lrn.tflite", lrn_after=7)]


def row(model: Path, p: LayerProfile, host_s: float) -> str:
    stop = p.stop
    naive = naive_layers([list(map(list, r)) for r in p.rounds_ns], p.slices)[1]
    low = sum(not r.resolved for r in p.groups)
    by = stop.by if stop is not None else "cut short"
    wall = f"{stop.wall_s:5.1f}" if stop is not None and stop.wall_s else "    ?"
    sessions = stop.sessions if stop is not None else 0
    return (f"{model.stem:<22} {'on' if p.xnnpack else 'off':>4} {len(p.groups):>4} {100 * p.sum_check:+6.1f} % "
            f"{100 * p.sum_check_se:5.1f} % {by:>9} {len(p.rounds_ns):>6} {sessions:>4} {wall} s {host_s:6.1f} s "
            f"{low:>5} {100 * naive:+8.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-time", type=float, default=60.0, help="the time bound per profile, s (default 60)")
    ap.add_argument("--target-se", type=float, default=2.0, help="the SE target, %% (default 2)")
    ap.add_argument("--board-python", type=Path, default=None,
                    help="the board's python (e.g. a numpy<2 + tflite-runtime 2.14 venv); default: this one")
    args = ap.parse_args()
    line = f'python = "{args.board_python}"\n' if args.board_python else ""
    target = parse_targets(f'[targets.local]\nkind = "local"\n{line}', "benchmark")["local"]
    print(f"{'model':<22} {'xnn':>4} {'rows':>4} {'check':>8} {'SE':>7} {'stopped':>9} {'rounds':>6} "
          f"{'sess':>4} {'board':>7} {'all':>8} {'<res':>5} {'old check':>10}")
    with tempfile.TemporaryDirectory(prefix="harness-layer-bench-") as tmp:
        work = Path(tmp)
        for model in models(work):
            for xnnpack in (False, True):
                plan = ProfilePlan(xnnpack=xnnpack, max_time_s=args.max_time, target_se=args.target_se / 100)
                t0 = time.monotonic()
                run = run_profile(target, model, work / "prefixes", work / "results", plan)
                host_s = time.monotonic() - t0
                if run.outcome is None or run.outcome.profile is None:
                    print(f"{model.stem:<22} {'on' if xnnpack else 'off':>4} failed: {run.status}")
                    continue
                print(row(model, run.outcome.profile, host_s), flush=True)
    print(f"\nrows: ops, or delegate partitions as one row; check: (overhead + rows - whole) / whole, SE its "
          f"bootstrap standard error; stopped: 'stable' (SE under {args.target_se:g} %) or 'max_time' "
          f"({args.max_time:g} s); board: the board's part, all: with prefix building and staging; "
          "<res: rows below resolution; old check: the estimator before (median raw differences) on the same "
          "samples")


if __name__ == "__main__":
    main()
